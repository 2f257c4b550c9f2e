"""Position schemes: absolute tables added to the embeddings (learned, sinusoidal) and
relative schemes applied inside attention (RoPE rotates queries and keys, ALiBi biases scores).
RoPE, with its layouts and frequency scalings, lives in ``compiler.components.rope``.

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
from compiler.components.rope import Rope  # noqa: F401 - re-exported: positions are imported from here


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


class LearnedPositions(nn.Embedding):
    """A trained table [max_seq_len + offset, D]; position p reads row p + offset (OPT and
    RoBERTa keep two rows in front: ``positional.offset`` 2). An ``nn.Embedding`` so the
    parameter is ``weight`` (``embed.positions.weight`` in ``compiler.naming``)."""

    def __init__(self, max_seq_len: int, embed_dim: int, offset: int = 0):
        super().__init__(max_seq_len + offset, embed_dim)
        self.offset = offset

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        return super().forward(position_ids + self.offset if self.offset else position_ids)


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
