"""One inspection run: a token sequence through an analysis graph -> attention, head scores,
entropy and the logit lens, as plain arrays and lists (batch 1, no padding).

The graph must be compiled with ``attention="analysis"`` (``compiler.inspect.load`` does it);
its outputs are those of the real model (tests compare them), and everything reported here
is read from that one run through ``capture``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import fx

from blueprint.errors import BlueprintError
from compiler.inspect.capture import capture, layer_node
from compiler.inspect.scores import SCORES, entropy, head_scores

# The probabilities [H, s, s] of every selected layer are held at once (and written to attention.npz).
MAX_ATTENTION_BYTES = 4 * 2**30

# Heads whose output is a distribution over the vocabulary, so a logit lens means something.
LENS_HEADS = ("causal_lm", "masked_lm")


@dataclass
class Inspection:
    """What ``inspect_ids`` found. Per-layer lists follow ``layers``; per-head lists follow
    ``heads`` (the same head indices in every selected layer)."""

    ids: list[int]
    tokens: list[str]
    layers: list[int]
    heads: list[int]
    attention: dict[int, np.ndarray]  # layer -> [len(heads), s, s] float32
    scores: dict[str, list[list[float]]]  # name -> [layers][heads]
    entropy: list[list[float]]  # [layers][heads], nats
    lens_ids: list[np.ndarray] | None = None  # per layer [s, k] top-k token ids
    lens_probs: list[np.ndarray] | None = None  # per layer [s, k] their probabilities
    lens_note: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict, repr=False)

    def lens_json(self, token_text) -> dict | None:
        if self.lens_ids is None:
            return None
        layers = []
        for layer, ids, probs in zip(self.layers, self.lens_ids, self.lens_probs):
            layers.append({"layer": layer, "positions": [
                {"ids": [int(t) for t in row_ids], "tokens": [token_text(int(t)) for t in row_ids],
                 "probs": [float(p) for p in row_probs]}
                for row_ids, row_probs in zip(ids, probs)]})
        return {"top_k": int(self.lens_ids[0].shape[1]) if self.lens_ids else 0, "layers": layers}


def single_inputs(gm: fx.GraphModule, ids: Sequence[int]) -> dict[str, torch.Tensor]:
    """The graph's inputs for one unpadded sequence."""
    x = torch.tensor([list(ids)], dtype=torch.int64)  # [1, s]
    s = x.shape[1]
    named = {"input_ids": x, "attention_mask": torch.ones_like(x),
             "position_ids": torch.arange(s)[None], "token_type_ids": torch.zeros_like(x)}
    return {n: named[n] for n in gm.meta["blueprint.input_names"]}


def check_ids(spec, ids: Sequence[int]) -> None:
    if not ids:
        raise BlueprintError("inspect needs at least one token", hint="pass --text, --ids or --induction")
    bad = [t for t in ids if not 0 <= t < spec.vocab_size]
    if bad:
        raise BlueprintError(f"token id {bad[0]} is outside the vocabulary (0..{spec.vocab_size - 1})")
    if len(ids) > spec.max_seq_len:
        raise BlueprintError(f"{len(ids)} tokens exceed the model's max_seq_len ({spec.max_seq_len})",
                             hint="shorten the input")


def check_selection(spec, layers: Sequence[int] | None, heads: Sequence[int] | None) -> tuple[list[int], list[int]]:
    """Selected layer and head indices (all by default), checked against every selected layer."""
    blocks = spec.resolved_layers()
    layers = list(range(len(blocks))) if layers is None else list(layers)
    for i in layers:
        if not 0 <= i < len(blocks):
            raise BlueprintError(f"layer {i} does not exist: the model has layers 0..{len(blocks) - 1}")
    fewest = min(blocks[i].attention.num_heads for i in layers)
    heads = list(range(fewest)) if heads is None else list(heads)
    for i in layers:
        n = blocks[i].attention.num_heads
        for h in heads:
            if not 0 <= h < n:
                raise BlueprintError(f"head {h} does not exist in layer {i}, which has heads 0..{n - 1}")
    return layers, heads


def logit_lens(gm: fx.GraphModule, hidden: torch.Tensor, mask: torch.Tensor, top_k: int):
    """The final norm and the head applied to one layer's residual stream [1, s, D]:
    top-k ids and probabilities [s, k]."""
    final_norm = getattr(gm, "final_norm", None)
    x = final_norm(hidden) if final_norm is not None else hidden
    logits = gm.head(x, mask)[0].float()  # [s, vocab]
    # ranked by logit (not by probability, where nearby logits can round to equal values), so
    # the top-1 of the last layer is exactly the model's own argmax
    top = logits.topk(min(top_k, logits.shape[-1]), dim=-1)  # [s, k]
    probs = logits.softmax(dim=-1).gather(-1, top.indices)  # [s, k]
    return top.indices.numpy(), probs.numpy()


def _finite(values: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in values]


def inspect_ids(gm: fx.GraphModule, spec, ids: Sequence[int], *, tokens: Sequence[str] | None = None,
                layers: Sequence[int] | None = None, heads: Sequence[int] | None = None,
                top_k: int = 5, lens: bool = True) -> Inspection:
    """Run ``ids`` (batch 1) through an analysis graph and collect what ``blueprint inspect`` reports.

    ``lens=False`` skips the logit lens (one vocabulary projection per layer: with a large
    vocabulary most of the run's cost).

    Raises:
        BlueprintError: ids outside the vocabulary or longer than max_seq_len, an unknown layer
            or head, or a graph compiled without analysis attention.
    """
    ids = [int(t) for t in ids]
    check_ids(spec, ids)
    layers, heads = check_selection(spec, layers, heads)
    blocks = spec.resolved_layers()
    held = sum(blocks[i].attention.num_heads for i in layers) * len(ids) ** 2 * 4
    if held > MAX_ATTENTION_BYTES:
        raise BlueprintError(
            f"the attention of {len(layers)} layers over {len(ids)} tokens takes {held / 2**30:.1f} GiB, "
            f"more than inspect holds ({MAX_ATTENTION_BYTES / 2**30:.0f} GiB)",
            hint="select fewer layers with --layers, or a shorter input")
    if tokens is not None and len(tokens) != len(ids):
        raise ValueError(f"{len(tokens)} token labels for {len(ids)} ids")
    inputs = single_inputs(gm, ids)
    with torch.no_grad():
        probs_modules = [f"layers.{i}.attn.probs" for i in layers]
        if not all(name in dict(gm.named_modules()) for name in probs_modules):
            raise BlueprintError("the graph was compiled without analysis attention",
                                 hint="compile with compile_spec(spec, attention='analysis')")
        seen = capture(gm.eval(), inputs, [*layers, *probs_modules] if lens else probs_modules)
    attention, scores, ent = {}, {name: [] for name in SCORES}, []
    for i in layers:
        a = seen[f"layers.{i}.attn.probs"][0, heads].float().numpy()  # [len(heads), s, s]
        attention[i] = a
        for name, values in head_scores(a, ids).items():
            scores[name].append(_finite(values))
        ent.append(_finite(entropy(a)))
    result = Inspection(ids=ids, tokens=list(tokens) if tokens is not None else [str(t) for t in ids],
                        layers=layers, heads=heads, attention=attention, scores=scores, entropy=ent,
                        outputs=seen["output"])
    if not lens:
        result.lens_note = "logit lens not computed"
        return result
    if spec.head.kind not in LENS_HEADS:
        result.lens_note = (f"no logit lens: the model's head ({spec.head.kind}) does not predict tokens")
        return result
    result.lens_ids, result.lens_probs = [], []
    with torch.no_grad():
        for i in layers:
            hidden = seen[layer_node(gm, i).name]  # the residual stream after layer i
            lens_ids, lens_probs = logit_lens(gm, hidden, inputs["attention_mask"], top_k)
            result.lens_ids.append(lens_ids)
            result.lens_probs.append(lens_probs)
    return result

