"""Position schemes: absolute tables added to the embeddings (learned, sinusoidal) and
relative schemes applied inside attention (RoPE rotates queries and keys, ALiBi biases scores).

Everything position-dependent is computed from the position tensor at run time rather than
from a precomputed [max_seq_len, ...] table, so graphs export with dynamic sequence lengths.
Frequencies and slopes are computed inside ``forward`` (float32, or float64 for a float64 model:
``compiler.components.precision``; sinusoidal angles always float64) rather than stored as
buffers, so ``module.half()`` cannot round them to fp16 (which would skew angles at large
positions). RoPE stays float32 like the transformers models it matches.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from compiler.components.precision import compute_dtype


class SinusoidalPositions(nn.Module):
    """Vaswani et al. (2017): pe[p, 2i] = sin(p / base^(2i/D)), pe[p, 2i+1] = cos(same)."""

    def __init__(self, embed_dim: int, base: float):
        super().__init__()
        self.embed_dim, self.base = embed_dim, base

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        # float64 angles: at position p a float32 angle is off by up to ulp(p)/2 (3e-4 at 8191),
        # an error added straight to the embeddings; the values are then exact float32.
        half = (self.embed_dim + 1) // 2
        exponent = torch.arange(half, device=position_ids.device).double() * 2 / self.embed_dim
        inv_freq = 1.0 / self.base ** exponent  # [ceil(D/2)]
        angles = position_ids.double()[..., None] * inv_freq  # [b, s, ceil(D/2)]
        pe = torch.stack((angles.sin(), angles.cos()), dim=-1)  # [b, s, ceil(D/2), 2], float64
        return pe.flatten(-2)[..., : self.embed_dim]  # [b, s, D]; the caller casts to its dtype


class Rope(nn.Module):
    """Rotary position embedding (Su et al. 2021), rotate-half layout as in GPT-NeoX and LLaMA.

    The first ``rotary_dim`` features of each head are rotated: pairs (x_j, x_{j+r/2}) turn by
    angle p * base^(-2j/r); the rest pass through unchanged (partial rotary, ``rotary_fraction``).
    """

    def __init__(self, head_dim: int, rotary_fraction: float, rope_base: float):
        super().__init__()
        self.rotary_dim = int(round(head_dim * rotary_fraction))
        self.rope_base = rope_base

    def forward(self, q: torch.Tensor, k: torch.Tensor, position_ids: torch.Tensor):
        """q: [b, s, H, hd], k: [b, s, KV, hd], position_ids: [b, s] -> rotated (q, k)."""
        r, ct = self.rotary_dim, compute_dtype(q.dtype)
        exponent = torch.arange(0, r, 2, device=q.device).to(ct) / r  # [r/2]
        inv_freq = 1.0 / self.rope_base ** exponent  # [r/2]
        freqs = position_ids.to(ct)[..., None] * inv_freq  # [b, s, r/2]
        angles = torch.cat((freqs, freqs), dim=-1)[:, :, None]  # [b, s, 1, r]
        cos, sin = angles.cos(), angles.sin()
        return self._rotate(q, cos, sin), self._rotate(k, cos, sin)

    def _rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        r = self.rotary_dim
        rot, rest = x[..., :r], x[..., r:]  # [b, s, n, r], [b, s, n, hd - r]
        x1, x2 = rot[..., : r // 2], rot[..., r // 2 :]
        rotated = torch.cat((-x2, x1), dim=-1)  # [b, s, n, r]
        out = (rot.to(cos.dtype) * cos + rotated.to(cos.dtype) * sin).to(x.dtype)
        return torch.cat((out, rest), dim=-1) if rest.shape[-1] else out


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """Press et al. (2022): a geometric sequence 2^(-8/n), 2^(-16/n), ...; for a head count that
    is not a power of two, the slopes of the nearest lower power plus every other slope of the
    next power (the reference implementation's rule)."""

    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    closest = 2 ** math.floor(math.log2(num_heads))
    slopes = power_of_two(closest)
    if closest != num_heads:
        slopes += power_of_two(2 * closest)[0::2][: num_heads - closest]
    # on the CPU whatever the default device: under torch.device("meta") (compile_spec(...,
    # device="meta")) a meta tensor has no values for Alibi to read
    return torch.tensor(slopes, dtype=torch.float32, device="cpu")


class Alibi(nn.Module):
    """Additive score bias -slope_h * distance(query, key), one slope per head."""

    def __init__(self, num_heads: int):
        super().__init__()
        self.slopes = alibi_slopes(num_heads).tolist()

    def forward(self, distance: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """distance: [s, t] non-negative -> bias [1, H, s, t] in ``compute_dtype(dtype)``."""
        ct = compute_dtype(dtype)
        slopes = torch.tensor(self.slopes, dtype=ct, device=distance.device)  # [H]
        return -slopes[:, None, None] * distance.to(ct)[None]  # [1, H, s, t]
