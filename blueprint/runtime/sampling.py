"""Choosing the next token from logits: greedy, temperature, top-k, top-p (nucleus).

Pure numpy. Ids at or above the tokenizer's real vocabulary are masked out first, so a model
whose ``vocab_size`` is padded (for matmul-friendly shapes) never emits an id the tokenizer
cannot decode. Sampling draws from a ``numpy.random.Generator``: the same seed gives the same
tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from blueprint.errors import BlueprintError


@dataclass(frozen=True)
class Sampling:
    """``temperature`` 0 means greedy (argmax); ``top_k``/``top_p`` restrict sampling."""

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        if not (0 <= self.temperature < math.inf):  # also rejects nan
            raise BlueprintError(f"temperature must be >= 0 and finite, got {self.temperature}",
                                 hint="0 means greedy")
        if self.top_k is not None and self.top_k < 1:
            raise BlueprintError(f"top-k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise BlueprintError(f"top-p must be in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def mask_vocab(logits: np.ndarray, vocab_limit: int) -> np.ndarray:
    """Logits with every id >= ``vocab_limit`` set to -inf (a copy)."""
    out = np.array(logits, dtype=np.float64)  # [..., vocab]
    out[..., vocab_limit:] = -np.inf
    return out


def next_token(logits: np.ndarray, sampling: Sampling, rng: np.random.Generator, vocab_limit: int) -> int:
    """One id from a [vocab] logits row."""
    if sampling.greedy:  # the first best id below the limit: what argmax of the masked copy gives, without the copy
        return int(np.argmax(logits[:vocab_limit]))
    scores = mask_vocab(logits, vocab_limit)
    # Shift before dividing: a tiny temperature then sends every other score to -inf (greedy in
    # the limit) instead of overflowing the best one to inf and giving inf - inf = nan.
    with np.errstate(over="ignore"):
        scores = (scores - scores.max()) / sampling.temperature
    if sampling.top_k is not None and sampling.top_k < vocab_limit:
        kth = np.partition(scores[:vocab_limit], -sampling.top_k)[-sampling.top_k]
        scores[scores < kth] = -np.inf
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    if sampling.top_p is not None and sampling.top_p < 1:
        order = np.argsort(-probs, kind="stable")
        cumulative = np.cumsum(probs[order])
        # Keep the smallest prefix whose mass reaches top_p (the first token always stays).
        keep = order[: int(np.searchsorted(cumulative, sampling.top_p)) + 1]
        kept = np.zeros_like(probs)
        kept[keep] = probs[keep]
        probs = kept / kept.sum()
    return int(rng.choice(probs.shape[0], p=probs))
