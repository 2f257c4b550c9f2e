"""The whole model: embeddings, one Block per layer, final norm, head.

``forward`` takes the contract-4 inputs positionally (see ``compiler.signature``) and returns
a dict keyed by the ONNX output names. It is written so that tracing it (with Embeddings,
Block, norms and heads as leaf modules) gives a graph that reads as the forward pass.
"""

from __future__ import annotations

import torch
from torch import nn


class Transformer(nn.Module):
    """Args:
        input_names / output_names: the contract-4 names, in order.
        kv_cache: a decoder that takes past K/V per layer and returns the present K/V.
    """

    def __init__(self, embed: nn.Module, layers: list[nn.Module], final_norm: nn.Module | None,
                 head: nn.Module, *, input_names: list[str], output_names: list[str],
                 kv_cache: bool = False):
        super().__init__()
        self.embed = embed
        self.layers = nn.ModuleList(layers)
        self.final_norm = final_norm
        self.head = head
        self.input_names, self.output_names, self.kv_cache = input_names, output_names, kv_cache

    def forward(self, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        if len(inputs) != len(self.input_names):
            raise TypeError(f"expected {len(self.input_names)} inputs ({', '.join(self.input_names)}), "
                            f"got {len(inputs)}")
        named = dict(zip(self.input_names, inputs))
        mask, positions = named["attention_mask"], named.get("position_ids")
        x = self.embed(named["input_ids"], positions, named.get("token_type_ids"))
        presents: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.layers):
            if self.kv_cache:
                x, k, v = layer(x, mask, positions, named[f"past_key_values.{i}.key"],
                                named[f"past_key_values.{i}.value"])
                presents[f"present.{i}.key"], presents[f"present.{i}.value"] = k, v
            else:
                x = layer(x, mask, positions)
        if self.final_norm is not None:
            x = self.final_norm(x)
        out = self.head(x, mask)
        if self.output_names[0] == "logits":  # decoder
            return {"logits": out, **presents}
        return {"last_hidden_state": x, self.output_names[1]: out}
