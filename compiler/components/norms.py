"""Normalisation layers: LayerNorm (with or without bias) and RMSNorm.

Both compute their statistics in float32 (float64 for a float64 model, see
``compiler.components.precision``) whatever the activation dtype, then cast back, so fp16/bf16
models normalise as accurately as fp32 ones. Parameters are ``weight`` (ones at
init) and, for a LayerNorm with ``bias: true``, ``bias`` (zeros) — the names in
``compiler.naming``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from compiler.components.precision import compute_dtype


class LayerNorm(nn.Module):
    """(x - mean) / sqrt(var + norm_eps) * weight (+ bias), over the last dimension."""

    def __init__(self, dim: int, norm_eps: float, bias: bool = True):
        super().__init__()
        self.norm_eps = norm_eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ct = compute_dtype(x.dtype)
        weight = self.weight.to(ct)
        bias = None if self.bias is None else self.bias.to(ct)
        out = F.layer_norm(x.to(ct), (x.shape[-1],), weight, bias, self.norm_eps)
        return out.to(x.dtype)


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + norm_eps) * weight (Zhang & Sennrich 2019), no centring, no bias."""

    def __init__(self, dim: int, norm_eps: float):
        super().__init__()
        self.norm_eps = norm_eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # F.rms_norm exports to one ONNX RMSNormalization op whose inputs are both fp32 here
        # (a hand-written pattern got fused with an fp16 scale that onnxruntime rejects).
        ct = compute_dtype(x.dtype)
        out = F.rms_norm(x.to(ct), (x.shape[-1],), self.weight.to(ct), self.norm_eps)
        return out.to(x.dtype)


def build_norm(norm_spec, dim: int) -> nn.Module:
    """The norm the spec's ``norm`` section names, over ``dim`` features."""
    return NORMS[norm_spec.kind](norm_spec, dim)


NORMS = {
    "layernorm": lambda s, dim: LayerNorm(dim, s.norm_eps, bias=s.bias),
    "rmsnorm": lambda s, dim: RMSNorm(dim, s.norm_eps),
}
