"""Head scores against a computation written here, one position at a time, from the issue's
definitions; and hand-made attention patterns whose scores are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from compiler.inspect.scores import earlier_occurrences, entropy, head_scores


def independent_scores(probs: np.ndarray, ids: list[int]) -> dict[str, list[float]]:
    """previous-token = mean A[i, i-1] over i >= 1; for each i whose token occurred earlier, j its
    most recent earlier occurrence: duplicate = mean A[i, j], induction = mean A[i, j+1]."""
    out = {"previous_token": [], "duplicate_token": [], "induction": []}
    for h in range(probs.shape[0]):
        prev = [probs[h, i, i - 1] for i in range(1, len(ids))]
        dup, ind = [], []
        for i in range(len(ids)):
            earlier = [j for j in range(i) if ids[j] == ids[i]]
            if earlier:
                j = max(earlier)
                dup.append(probs[h, i, j])
                ind.append(probs[h, i, j + 1])
        out["previous_token"].append(sum(prev) / len(prev) if prev else math.nan)
        out["duplicate_token"].append(sum(dup) / len(dup) if dup else math.nan)
        out["induction"].append(sum(ind) / len(ind) if ind else math.nan)
    return out


def independent_entropy(probs: np.ndarray) -> list[float]:
    H, s, t = probs.shape
    return [sum(-sum(p * math.log(p) for p in probs[h, i] if p > 0) for i in range(s)) / s for h in range(H)]


def random_causal(heads: int, s: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.random((heads, s, s)) * np.tril(np.ones((s, s)))  # [H, s, s]
    return a / a.sum(-1, keepdims=True)


@pytest.mark.parametrize("seed", range(5))
def test_scores_equal_an_independent_computation(seed):
    rng = np.random.default_rng(100 + seed)
    ids = rng.integers(0, 6, size=17).tolist()  # small vocabulary: many repeats
    probs = random_causal(4, len(ids), seed)
    ours = head_scores(probs, ids)
    ref = independent_scores(probs, ids)
    for name in ref:
        np.testing.assert_allclose(ours[name], ref[name], rtol=0, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(entropy(probs), independent_entropy(probs), rtol=0, atol=1e-12)


def test_hand_made_heads_score_one():
    """A probe with a repeated half: a previous-token head, an induction head and a
    duplicate-token head built by hand score exactly 1 on their own score."""
    half = [7, 3, 9, 4]
    ids = [1] + half + half  # bos + random + repeat
    s = len(ids)
    pairs = dict(earlier_occurrences(ids))
    prev, ind, dup = np.zeros((s, s)), np.zeros((s, s)), np.zeros((s, s))
    for i in range(s):
        prev[i, max(i - 1, 0)] = 1.0
        ind[i, pairs[i] + 1 if i in pairs else 0] = 1.0
        dup[i, pairs[i] if i in pairs else 0] = 1.0
    scores = head_scores(np.stack([prev, ind, dup]), ids)
    assert scores["previous_token"].tolist() == [1.0, 0.125, 0.125]  # only i=1 -> 0 in the others
    assert scores["induction"].tolist() == [0.0, 1.0, 0.0]
    assert scores["duplicate_token"].tolist() == [0.0, 0.0, 1.0]
    # uniform causal attention: entropy log(i + 1) averaged over queries
    uniform = np.tril(np.ones((s, s))) / np.arange(1, s + 1)[:, None]
    assert entropy(uniform[None])[0] == pytest.approx(np.mean(np.log(np.arange(1, s + 1))), abs=1e-12)


def test_earlier_occurrences_take_the_most_recent():
    assert earlier_occurrences([5, 6, 5, 5, 6]) == [(2, 0), (3, 2), (4, 1)]


def test_no_repeats_and_single_token_give_nan():
    probs = random_causal(2, 3, 0)
    scores = head_scores(probs, [1, 2, 3])
    assert np.isnan(scores["induction"]).all() and np.isnan(scores["duplicate_token"]).all()
    one = head_scores(np.ones((2, 1, 1)), [4])
    assert np.isnan(one["previous_token"]).all()


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match=r"\[heads, 3, 3\]"):
        head_scores(np.ones((2, 4, 4)), [1, 2, 3])
