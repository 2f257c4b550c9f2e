"""Normalisation layers: LayerNorm (with or without bias) and RMSNorm.

Both compute their statistics in float32 (float64 for a float64 model, see
``compiler.components.precision``) whatever the activation dtype, then cast back, so fp16/bf16
models normalise as accurately as fp32 ones. Parameters are ``weight`` (at init
``1 - weight_offset``, so the scale starts at 1; absent for a LayerNorm with ``weight: false``)
and, for a LayerNorm with ``bias: true``, ``bias`` (zeros) — the names in ``compiler.naming``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from compiler.components.precision import compute_dtype


def _scale(weight: torch.Tensor | None, offset: float, ct: torch.dtype) -> torch.Tensor | None:
    """The multiplier the normalised rows get: ``offset + weight`` in the compute dtype (Gemma's
    ``1 + w`` is added in float32 as transformers does, then used once)."""
    if weight is None:
        return None
    w = weight.to(ct)
    return w if offset == 0 else w + offset


class LayerNorm(nn.Module):
    """(x - mean) / sqrt(var + norm_eps) * (weight_offset + weight) (+ bias), over the last
    dimension. ``weight=False`` (with ``bias=False``: non-parametric, OLMo 1) has no weight."""

    def __init__(self, dim: int, norm_eps: float, bias: bool = True, *, weight: bool = True,
                 weight_offset: float = 0.0):
        super().__init__()
        self.norm_eps, self.weight_offset = norm_eps, weight_offset
        self.weight = nn.Parameter(torch.ones(dim)) if weight else None
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ct = compute_dtype(x.dtype)
        bias = None if self.bias is None else self.bias.to(ct)
        out = F.layer_norm(x.to(ct), (x.shape[-1],), _scale(self.weight, self.weight_offset, ct),
                           bias, self.norm_eps)
        return out.to(x.dtype)


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + norm_eps) * (weight_offset + weight) (Zhang & Sennrich 2019), no
    centring, no bias. ``weight_offset`` 1 is Gemma's ``(1 + w)``."""

    def __init__(self, dim: int, norm_eps: float, *, weight_offset: float = 0.0):
        super().__init__()
        self.norm_eps, self.weight_offset = norm_eps, weight_offset
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # F.rms_norm exports to one ONNX RMSNormalization op whose inputs are both fp32 here
        # (a hand-written pattern got fused with an fp16 scale that onnxruntime rejects).
        ct = compute_dtype(x.dtype)
        scale = _scale(self.weight, self.weight_offset, ct)
        out = F.rms_norm(x.to(ct), (x.shape[-1],), scale, self.norm_eps)
        return out.to(x.dtype)


def build_norm(norm_spec, dim: int) -> nn.Module:
    """The norm the spec's ``norm`` section names, over ``dim`` features."""
    return NORMS[norm_spec.kind](norm_spec, dim)


NORMS = {
    "layernorm": lambda s, dim: LayerNorm(dim, s.norm_eps, bias=s.bias, weight=s.weight,
                                          weight_offset=s.weight_offset),
    "rmsnorm": lambda s, dim: RMSNorm(dim, s.norm_eps, weight_offset=s.weight_offset),
}
