"""Rotary position embedding (Su et al. 2021): layouts and frequency scalings.

Shape glossary: b batch, s positions, n heads, hd head_dim, r rotary_dim (the first r features
of each head are rotated, r = hd * rotary_fraction), r/2 frequencies.

Layouts (``positional.layout``): ``half_split`` turns the pair (x_j, x_{j+r/2}) by angle
p * f_j (GPT-NeoX, LLaMA: transformers' ``rotate_half``); ``interleaved`` turns (x_2j, x_2j+1)
(GPT-J: ``rotate_every_two``). Both are the same rotation on a permuted head, so weights trained
for one are not interchangeable with the other.

Frequencies f_j start from base^(-2j/r) and a scaling (``positional.scaling`` or a layer's
``attention.rope_scaling``) may change them, one function per kind in ``SCALINGS``, each the
formula transformers' ``ROPE_INIT_FUNCTIONS`` uses (linear, llama3, yarn, longrope); yarn and
longrope also multiply cos and sin by an ``attention_factor``. Everything is computed inside
``forward`` in ``compute_dtype`` (float32, float64 for a float64 graph), never stored as a
buffer, so a float64 run is a real float64 evaluation and ``.half()`` cannot round the angles.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from compiler.components.precision import compute_dtype


def _base_inv_freq(base: float, r: int, dtype: torch.dtype, device) -> torch.Tensor:
    """base^(-2j/r) for j < r/2 -> [r/2], computed as transformers does (exponent in ``dtype``)."""
    exponent = torch.arange(0, r, 2, device=device).to(dtype) / r  # [r/2]
    return 1.0 / base ** exponent


def _none(s, base, r, dtype, device, position_ids):
    return _base_inv_freq(base, r, dtype, device)


def _linear(s, base, r, dtype, device, position_ids):
    return _base_inv_freq(base, r, dtype, device) / s.factor


def _llama3(s, base, r, dtype, device, position_ids):
    inv = _base_inv_freq(base, r, dtype, device)  # [r/2]
    low_wavelen = s.original_max_seq_len / s.low_freq_factor
    high_wavelen = s.original_max_seq_len / s.high_freq_factor
    wavelen = 2 * math.pi / inv  # [r/2]
    scaled = torch.where(wavelen > low_wavelen, inv / s.factor, inv)  # long wavelengths: interpolate
    smooth = (s.original_max_seq_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor)
    smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return torch.where(medium, smoothed, scaled)


def _yarn_range(s, base: float, r: int) -> tuple[float, float]:
    """The dimensions (of r/2) between which YaRN ramps from interpolation to extrapolation."""
    def dim_for(rotations: float) -> float:
        return r * math.log(s.original_max_seq_len / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = dim_for(s.beta_fast), dim_for(s.beta_slow)
    if s.truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, r - 1)
    return low, (high + 0.001 if low == high else high)  # no division by zero


def _yarn(s, base, r, dtype, device, position_ids):
    pos_freqs = base ** (torch.arange(0, r, 2, device=device).to(dtype) / r)  # [r/2]
    extrapolated, interpolated = 1.0 / pos_freqs, 1.0 / (s.factor * pos_freqs)
    low, high = _yarn_range(s, base, r)
    ramp = ((torch.arange(r // 2, device=device).to(dtype) - low) / (high - low)).clamp(0, 1)  # [r/2]
    keep = 1 - ramp  # 1: extrapolate (high frequencies), 0: interpolate (low ones)
    return interpolated * (1 - keep) + extrapolated * keep


def _longrope(s, base, r, dtype, device, position_ids):
    shape = torch.arange(0, r, 2, device=device).to(dtype) / r  # [r/2]
    short = torch.tensor(s.short_factor, dtype=dtype, device=device)  # [r/2]
    long = torch.tensor(s.long_factor, dtype=dtype, device=device)  # [r/2]
    # per call, as transformers' dynamic update: the long set once any position passes the original length
    beyond = position_ids.max() + 1 > s.original_max_seq_len
    return 1.0 / (torch.where(beyond, long, short) * base ** shape)


# scaling kind -> (spec, base, r, dtype, device, position_ids [b, s]) -> inverse frequencies [r/2]
SCALINGS: dict[str, Callable[..., torch.Tensor]] = {
    "none": _none, "linear": _linear, "llama3": _llama3, "yarn": _yarn, "longrope": _longrope,
}


def _half_split(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [b, s, n, r]; cos, sin: [b, s, 1, r/2] -> pairs (j, j + r/2) rotated."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]  # [b, s, n, r/2] each
    cos, sin = torch.cat((cos, cos), dim=-1), torch.cat((sin, sin), dim=-1)  # [b, s, 1, r]
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


def _interleaved(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [b, s, n, r]; cos, sin: [b, s, 1, r/2] -> pairs (2j, 2j + 1) rotated."""
    pairs = x.unflatten(-1, (x.shape[-1] // 2, 2))  # [b, s, n, r/2, 2]
    x1, x2 = pairs[..., 0], pairs[..., 1]  # [b, s, n, r/2] each
    return torch.stack((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).flatten(-2)  # [b, s, n, r]


LAYOUTS = {"half_split": _half_split, "interleaved": _interleaved}


class Rope(nn.Module):
    """Rotates the first ``rotary_dim`` features of each query and key head by position.

    Args:
        head_dim, rotary_fraction: rotary_dim = round(head_dim * rotary_fraction) (even).
        rope_base: the base of the frequencies.
        layout: ``half_split`` or ``interleaved`` (``LAYOUTS``).
        scaling: a ``positional.scaling`` spec (``SCALINGS`` row by its ``kind``), or None.
    """

    def __init__(self, head_dim: int, rotary_fraction: float, rope_base: float,
                 layout: str = "half_split", scaling: Any = None):
        super().__init__()
        self.rotary_dim = int(round(head_dim * rotary_fraction))
        self.rope_base, self.layout, self.scaling = rope_base, layout, scaling
        self._frequencies = SCALINGS[scaling.kind if scaling is not None else "none"]
        self._rotate_pairs = LAYOUTS[layout]
        self.attention_factor = float(getattr(scaling, "attention_factor", None) or 1.0)

    def forward(self, q: torch.Tensor, k: torch.Tensor, position_ids: torch.Tensor):
        """q: [b, s, H, hd], k: [b, s, KV, hd], position_ids: [b, s] -> rotated (q, k)."""
        r, ct = self.rotary_dim, compute_dtype(q.dtype)
        inv_freq = self._frequencies(self.scaling, self.rope_base, r, ct, q.device, position_ids)  # [r/2]
        angles = (position_ids.to(ct)[..., None] * inv_freq)[:, :, None]  # [b, s, 1, r/2]
        cos, sin = angles.cos(), angles.sin()
        if self.attention_factor != 1.0:
            cos, sin = cos * self.attention_factor, sin * self.attention_factor
        return self._rotate(q, cos, sin), self._rotate(k, cos, sin)

    def _rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        r = self.rotary_dim
        rot, rest = x[..., :r], x[..., r:]  # [b, s, n, r], [b, s, n, hd - r]
        out = self._rotate_pairs(rot.to(cos.dtype), cos, sin).to(x.dtype)
        return torch.cat((out, rest), dim=-1) if rest.shape[-1] else out
