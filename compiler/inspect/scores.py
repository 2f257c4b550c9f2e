"""Head scores from one sequence's attention probabilities (numpy, batch 1).

Definitions (A[h, i, j]: how much head h's query at position i attends to key position j):
- previous_token: mean over i >= 1 of A[h, i, i - 1].
- For each position i whose token occurred earlier, with j its most recent earlier occurrence:
  duplicate_token = mean A[h, i, j] (attend to the earlier copy of yourself) and
  induction = mean A[h, i, j + 1] (attend to what followed it last time: the head that lets a
  model continue a repeated sequence, Olsson et al. 2022).
- entropy: the mean over query positions of -sum_j A[h, i, j] log A[h, i, j], in nats
  (0: one key only; log(i + 1): uniform over a causal prefix).
A score with no position to average over (one token; no repeated token) is NaN.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

SCORES = ("previous_token", "induction", "duplicate_token")


def earlier_occurrences(ids: Sequence[int]) -> list[tuple[int, int]]:
    """(i, j) for every position i whose token occurred before, j its most recent occurrence."""
    last: dict[int, int] = {}
    pairs = []
    for i, token in enumerate(ids):
        if token in last:
            pairs.append((i, last[token]))
        last[token] = i
    return pairs


def _mean_at(probs: np.ndarray, rows: list[int], cols: list[int]) -> np.ndarray:
    """Per head, the mean of probs[h, rows[n], cols[n]] over n; NaN when there is none."""
    if not rows:
        return np.full(probs.shape[0], np.nan)
    return probs[:, rows, cols].astype(np.float64).mean(axis=1)  # [H]


def head_scores(probs: np.ndarray, ids: Sequence[int]) -> dict[str, np.ndarray]:
    """probs: [H, s, s] for one layer, ids: the s token ids -> score name -> [H]."""
    s = len(ids)
    if probs.ndim != 3 or probs.shape[1:] != (s, s):
        raise ValueError(f"probs must be [heads, {s}, {s}] for {s} tokens, got {list(probs.shape)}")
    pairs = earlier_occurrences(ids)
    queries = [i for i, _ in pairs]
    return {
        "previous_token": _mean_at(probs, list(range(1, s)), list(range(s - 1))),
        "duplicate_token": _mean_at(probs, queries, [j for _, j in pairs]),
        "induction": _mean_at(probs, queries, [j + 1 for _, j in pairs]),
    }


def entropy(probs: np.ndarray) -> np.ndarray:
    """probs: [H, s, t] -> [H], the mean entropy (nats) of each head's attention rows."""
    p = probs.astype(np.float64)
    terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)  # [H, s, t]
    return terms.sum(axis=-1).mean(axis=-1)  # [H]
