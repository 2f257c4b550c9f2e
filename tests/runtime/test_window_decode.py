"""The decode loop on ``--window-cache`` builds (blueprint/runtime/steppers.py, decoder.py).

``BoundStepper`` gives each windowed layer one buffer of its capacity C, bound as both past and
present (the op evicts inside it), and global layers the full one. Against the full-cache fused
build of the same spec (same seed, same weights): logits agree to 1e-5 at every step of a
greedy decode that runs far past C, at batch 1 and on a left-padded batch 2, and the windowed
buffers are the smaller ones; ``generate_batch`` gives the same ids. onnxruntime-genai's run of a
window-cache build is in test_genai_config.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from blueprint import runtime
from blueprint.position_ids import position_ids_for
from blueprint.runtime.steppers import ArrayStepper, BoundStepper

PROMPTS = [[5, 17, 99, 3, 42, 7, 11, 23, 64, 1, 9, 30], [8, 8, 120]]


@pytest.mark.parametrize("rows", [PROMPTS[:1], PROMPTS])
def test_bound_window_steps_equal_the_full_cache(builds, rows):
    full, window = runtime.load(builds("mistral-tiny").directory), runtime.load(builds("mistral-tiny+window").directory)
    b, width, new = len(rows), max(len(r) for r in rows), 90  # T reaches 101, C is 24
    ids = np.zeros((b, width), dtype=np.int64)
    mask = np.zeros((b, width), dtype=np.int64)
    for r, row in enumerate(rows):
        ids[r, width - len(row):], mask[r, width - len(row):] = row, 1  # left padding
    steppers = [BoundStepper(full, b, width + new), BoundStepper(window, b, width + new), ArrayStepper(window)]
    shapes = [[c.shape() for c in s.caches] for s in steppers[:2]]
    assert all(s == [b, 2, width + new, 16] for s in shapes[0])
    assert all(s == [b, 2, 24, 16] for s in shapes[1])  # C = 8 + 16 rows, whatever the length
    positions = position_ids_for(mask)
    lengths = mask.sum(axis=1)
    for step in range(new):
        logits = [s.step(ids, mask, positions) for s in steppers]
        for other in logits[1:]:
            assert np.abs(other - logits[0]).max() <= 1e-5, (step, float(np.abs(other - logits[0]).max()))
        ids = np.argmax(logits[0][:, :250], axis=-1)[:, None]
        mask = np.concatenate([mask, np.ones((b, 1), dtype=np.int64)], axis=1)
        positions, lengths = lengths[:, None], lengths + 1


def test_window_build_generates_the_same_ids(builds):
    full, window = runtime.load(builds("mistral-tiny").directory), runtime.load(builds("mistral-tiny+window").directory)
    expected = [g.ids for g in full.generate_batch(PROMPTS, max_new_tokens=60, stop_ids=[])]
    assert [g.ids for g in window.generate_batch(PROMPTS, max_new_tokens=60, stop_ids=[])] == expected
    assert window.generate(PROMPTS[0], max_new_tokens=60, stop_ids=[]).ids == expected[0]


def test_forward_prefill_allocates_the_capacity(builds):
    window = runtime.load(builds("mistral-tiny+window").directory)
    logits, past = window.forward(np.array([[5, 6, 7, 8]]), np.ones((1, 4), dtype=np.int64))
    assert logits.shape == (1, 4, window.spec.vocab_size)  # every position, as a full build
    assert {v.shape for v in past.values()} == {(1, 2, 24, 16)}  # rows [0, 4) hold positions 0..3
