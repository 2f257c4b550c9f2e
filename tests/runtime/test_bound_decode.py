"""The decode loop of fused builds (blueprint/runtime/steppers.py) and batched generation.

``BoundStepper`` (IO binding, one cache buffer per layer shared by past and present, logits of
the last position only) against ``ArrayStepper`` (``Decoder.forward`` with numpy arrays, the
cache returned whole each step) on the same build: logits agree to 1e-5 step by step, on a
left-padded batch and past mistral-tiny's window. A fused build and a portable (plain ONNX)
build of the same spec (same seed, same weights) generate the same ids. ``generate_batch`` gives
each prompt what ``generate`` gives it alone.
"""

from __future__ import annotations

import numpy as np
import pytest
from buildfixtures import SPECS

from blueprint import runtime
from blueprint.runtime.steppers import ArrayStepper, BoundStepper, can_bind
from compiler.export.build import build

PROMPTS = [[5, 17, 99, 3, 42, 7, 11, 23, 64, 1, 9, 30], [8, 8, 120], list(range(30, 52))]


@pytest.mark.parametrize("name", ["llama-tiny", "mistral-tiny", "gpt2-tiny"])
def test_bound_steps_equal_array_steps(builds, name):
    decoder = runtime.load(builds(name).directory)
    assert can_bind(decoder.build.session)
    b, width = 3, 12
    ids = np.random.default_rng(0).integers(3, 250, (b, width))
    mask = np.ones((b, width), dtype=np.int64)
    mask[1, :4] = 0  # left padding
    mask[2, :9] = 0
    positions = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)
    bound, array = BoundStepper(decoder, b, width + 20), ArrayStepper(decoder)
    lengths = mask.sum(axis=1)
    for step in range(20):  # past mistral-tiny's window of 8
        a, c = bound.step(ids, mask, positions), array.step(ids, mask, positions)
        assert a.shape == c.shape == (b, decoder.spec.vocab_size)
        assert np.abs(a - c).max() <= 1e-5, (step, float(np.abs(a - c).max()))
        ids = np.argmax(c[:, :250], axis=-1)[:, None]
        mask = np.concatenate([mask, np.ones((b, 1), dtype=np.int64)], axis=1)
        positions, lengths = lengths[:, None], lengths + 1


def test_forward_still_returns_every_position(builds):
    decoder = runtime.load(builds("llama-tiny").directory)
    logits, past = decoder.forward(np.array([[5, 6, 7, 8]]), np.ones((1, 4), dtype=np.int64))
    assert logits.shape == (1, 4, decoder.spec.vocab_size)
    assert past["past_key_values.0.key"].shape[2] == 4


@pytest.mark.parametrize("name", ["llama-tiny", "mistral-tiny"])
def test_generate_batch_equals_each_prompt_alone(builds, name):
    decoder = runtime.load(builds(name).directory)
    alone = [decoder.generate(p, max_new_tokens=20, stop_ids=[]).ids for p in PROMPTS]
    together = decoder.generate_batch(PROMPTS, max_new_tokens=20, stop_ids=[])
    assert [g.ids for g in together] == alone
    assert [g.prompt_ids for g in together] == PROMPTS
    decoder.stepper = lambda batch, capacity: ArrayStepper(decoder)  # the plain loop: same ids
    assert [decoder.generate(p, max_new_tokens=20, stop_ids=[]).ids for p in PROMPTS] == alone


def test_a_row_that_stops_keeps_its_result_while_others_go_on(builds):
    decoder = runtime.load(builds("llama-tiny").directory)
    free = decoder.generate_batch(PROMPTS, max_new_tokens=12, stop_ids=[])
    stop = free[0].ids[3]
    stopped = decoder.generate_batch(PROMPTS, max_new_tokens=12, stop_ids=[stop])
    first = free[0].ids.index(stop)
    assert stopped[0].ids == free[0].ids[:first + 1] and stopped[0].stop_reason == "eos"
    for g, f in zip(stopped[1:], free[1:]):
        cut = next((i for i, t in enumerate(f.ids) if t == stop), None)
        assert g.ids == (f.ids if cut is None else f.ids[:cut + 1])


def test_generation_stops_at_max_seq_len(builds):
    decoder = runtime.load(builds("gpt2-tiny").directory)  # max_seq_len 64
    prompt = list(range(3, 63))  # 60 tokens: positions 60..63 are left, so 5 ids can be chosen
    result = decoder.generate(prompt, max_new_tokens=10, stop_ids=[])
    assert len(result.ids) == 5 and result.stop_reason == "max_seq_len"
    rows = decoder.generate_batch([prompt, [4, 5]], max_new_tokens=10, stop_ids=[])
    assert [len(g.ids) for g in rows] == [5, 5] and rows[0].ids == result.ids


def test_fused_and_portable_builds_generate_the_same_ids(builds, tmp_path):
    portable = runtime.load(build(SPECS / "mistral-tiny.yaml", tmp_path / "p", verify=False, portable=True).directory)
    fused = runtime.load(builds("mistral-tiny").directory)
    assert not can_bind(portable.build.session)
    assert [g.ids for g in portable.generate_batch(PROMPTS, max_new_tokens=16, stop_ids=[])] == \
           [g.ids for g in fused.generate_batch(PROMPTS, max_new_tokens=16, stop_ids=[])]
