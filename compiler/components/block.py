"""One transformer layer: attention and FFN sublayers with their norms and residuals.

Norm placement (``norm_placement``), for a sublayer f with residual multiplier m:
- pre: x + m * f(norm(x))                  (GPT-2, LLaMA; ``attn_norm: false`` drops the first)
- post: norm(x + m * f(x))                 (GPT, BERT)
- sandwich: x + m * out_norm(f(norm(x)))   (norm on both sides of the sublayer; Gemma 2)
- post_sublayer: x + m * out_norm(f(x))    (only the sublayer's output; OLMo 2)
Residual (``residual``): sequential applies attention then FFN; parallel feeds both sublayers
from the same input x and adds both, x + attn(attn_norm(x)) + ffn(ffn_norm(x)) (GPT-NeoX);
parallel_shared_norm computes one norm and feeds it to both, x + attn(n) + ffn(n) with
n = attn_norm(x) (GPT-J). With post placement the norms act after the single add (attn_norm,
then ffn_norm if there is one).

Residual dropout (spec ``dropout.residual``) acts on each sublayer's output before the add;
``residual_multiplier`` (Granite) scales it there too.
"""

from __future__ import annotations

import torch
from torch import nn


class Block(nn.Module):
    """Takes its submodules; a norm that the wiring has no use for is None. ``norm_placement``
    and ``residual`` pick the wiring at build time, so ``forward`` only runs the chosen one.

    Args:
        attn_norm: the attention input norm (pre/sandwich), the norm after the attention add
            (post), or the one norm both parallel sublayers read (parallel_shared_norm).
        ffn_norm: the FFN's norm; None with parallel_shared_norm or post_sublayer.
        attn_out_norm / ffn_out_norm: norms on the sublayer outputs (sandwich, post_sublayer).
        residual_multiplier: scales each sublayer's output before the residual add.
    """

    def __init__(self, attn: nn.Module, ffn: nn.Module, *, attn_norm: nn.Module | None,
                 ffn_norm: nn.Module | None, attn_out_norm: nn.Module | None = None,
                 ffn_out_norm: nn.Module | None = None, norm_placement: str = "pre",
                 residual: str = "sequential", residual_multiplier: float = 1.0,
                 dropout: float = 0.0):
        super().__init__()
        self.attn_norm = attn_norm
        self.attn = attn
        self.attn_out_norm = attn_out_norm
        self.ffn_norm = ffn_norm
        self.ffn = ffn
        self.ffn_out_norm = ffn_out_norm
        self.drop = nn.Dropout(dropout)
        self.norm_placement = norm_placement
        self.residual = residual
        self.residual_multiplier = residual_multiplier

    @staticmethod
    def _maybe(norm: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
        return x if norm is None else norm(x)

    def _branch(self, out_norm: nn.Module | None, y: torch.Tensor) -> torch.Tensor:
        """What a sublayer output y adds to the residual stream."""
        y = self.drop(self._maybe(out_norm, y))
        # a multiplier of exactly 1 is left out of the graph (and of the export)
        return y if self.residual_multiplier == 1.0 else y * self.residual_multiplier

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor,
                position_ids: torch.Tensor | None = None, past_key: torch.Tensor | None = None,
                past_value: torch.Tensor | None = None):
        """x: [b, s, D] -> [b, s, D]; with a past, also the layer's full K and V [b, KV, t, hd]."""
        cache = past_key is not None

        def attend(h: torch.Tensor):
            out = self.attn(h, attention_mask, position_ids, past_key, past_value)
            return out if cache else (out, None, None)

        wiring = self._sequential if self.residual == "sequential" else self._parallel
        x, k, v = wiring(x, attend)
        return (x, k, v) if cache else x

    def _sequential(self, x, attend):
        post = self.norm_placement == "post"
        a, k, v = attend(x if post else self._maybe(self.attn_norm, x))
        x = x + self._branch(self.attn_out_norm, a)
        if post:
            x = self._maybe(self.attn_norm, x)
        f = self.ffn(x if post else self._maybe(self.ffn_norm, x))
        x = x + self._branch(self.ffn_out_norm, f)
        if post:
            x = self._maybe(self.ffn_norm, x)
        return x, k, v

    def _parallel(self, x, attend):
        post = self.norm_placement == "post"
        h = x if post else self._maybe(self.attn_norm, x)
        a, k, v = attend(h)
        if self.residual == "parallel_shared_norm" or post:
            f = self.ffn(h)
        else:
            f = self.ffn(self._maybe(self.ffn_norm, x))
        x = x + self._branch(self.attn_out_norm, a) + self._branch(self.ffn_out_norm, f)
        if post:
            x = self._maybe(self.ffn_norm, self._maybe(self.attn_norm, x))
        return x, k, v
