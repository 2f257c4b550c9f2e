"""One transformer layer: attention and FFN sublayers with their norms and residuals.

Norm placement (``norm_placement``):
- pre: x + f(norm(x))                      (GPT-2, LLaMA; ``attn_norm: false`` drops the first)
- post: norm(x + f(x))                     (GPT, BERT)
- sandwich: x + out_norm(f(norm(x)))       (norm on both sides of the sublayer)
Residual (``residual``): sequential applies attention then FFN; parallel feeds both sublayers
from the same input x and adds both, x + attn(attn_norm(x)) + ffn(ffn_norm(x)) (GPT-NeoX);
with post placement, attn_norm then ffn_norm are applied after the single add.

Residual dropout (spec ``dropout.residual``) acts on each sublayer's output before the add.
"""

from __future__ import annotations

import torch
from torch import nn


class Block(nn.Module):
    """Takes its submodules; ``norm_placement`` and ``residual`` pick the wiring at build time,
    so ``forward`` only runs the chosen one."""

    def __init__(self, attn: nn.Module, ffn: nn.Module, *, attn_norm: nn.Module | None,
                 ffn_norm: nn.Module, attn_out_norm: nn.Module | None = None,
                 ffn_out_norm: nn.Module | None = None, norm_placement: str = "pre",
                 residual: str = "sequential", dropout: float = 0.0):
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

    @staticmethod
    def _maybe(norm: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
        return x if norm is None else norm(x)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor,
                position_ids: torch.Tensor | None = None, past_key: torch.Tensor | None = None,
                past_value: torch.Tensor | None = None):
        """x: [b, s, D] -> [b, s, D]; with a past, also the layer's full K and V [b, KV, t, hd]."""
        cache = past_key is not None

        def attend(h: torch.Tensor):
            out = self.attn(h, attention_mask, position_ids, past_key, past_value)
            return out if cache else (out, None, None)

        wiring = self._parallel if self.residual == "parallel" else self._sequential
        x, k, v = wiring(x, attend)
        return (x, k, v) if cache else x

    def _sequential(self, x, attend):
        post = self.norm_placement == "post"
        a, k, v = attend(x if post else self._maybe(self.attn_norm, x))
        x = x + self.drop(self._maybe(self.attn_out_norm, a))
        if post:
            x = self._maybe(self.attn_norm, x)
        f = self.ffn(x if post else self.ffn_norm(x))
        x = x + self.drop(self._maybe(self.ffn_out_norm, f))
        if post:
            x = self.ffn_norm(x)
        return x, k, v

    def _parallel(self, x, attend):
        post = self.norm_placement == "post"
        a, k, v = attend(x if post else self._maybe(self.attn_norm, x))
        f = self.ffn(x if post else self.ffn_norm(x))
        x = x + self.drop(self._maybe(self.attn_out_norm, a)) + self.drop(self._maybe(self.ffn_out_norm, f))
        if post:
            x = self.ffn_norm(self._maybe(self.attn_norm, x))
        return x, k, v
