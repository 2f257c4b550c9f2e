"""Next-token choice: vocabulary masking, greedy, top-k, top-p, seeded reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from blueprint import runtime
from blueprint.errors import BlueprintError
from blueprint.runtime.sampling import Sampling, next_token


def test_greedy_never_picks_a_padded_id():
    logits = np.zeros(256)
    logits[253] = 10.0  # the best id lies in the padding beyond the tokenizer's 250 ids
    logits[17] = 1.0
    assert next_token(logits, Sampling(), np.random.default_rng(0), vocab_limit=250) == 17
    assert next_token(logits, Sampling(), np.random.default_rng(0), vocab_limit=256) == 253


def test_sampling_never_picks_a_padded_id():
    logits = np.zeros(256)
    logits[250:] = 5.0
    rng = np.random.default_rng(0)
    draws = [next_token(logits, Sampling(temperature=1.0), rng, 250) for _ in range(300)]
    assert max(draws) < 250
    unmasked = [next_token(logits, Sampling(temperature=1.0), rng, 256) for _ in range(50)]
    assert max(unmasked) >= 250  # the control: without the limit those ids dominate


def test_top_k_and_top_p_restrict_the_support():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    rng = np.random.default_rng(1)
    top2 = {next_token(logits, Sampling(temperature=1.0, top_k=2), rng, 4) for _ in range(200)}
    assert top2 == {0, 1}
    nucleus = {next_token(logits, Sampling(temperature=1.0, top_p=0.75), rng, 4) for _ in range(300)}
    assert nucleus == {0, 1}  # 0.5 + 0.3 reaches 0.75
    wide = {next_token(logits, Sampling(temperature=1.0, top_p=0.85), rng, 4) for _ in range(300)}
    assert wide == {0, 1, 2}


def test_sampling_follows_the_distribution():
    logits = np.log(np.array([0.7, 0.2, 0.1]))
    rng = np.random.default_rng(2)
    counts = np.bincount([next_token(logits, Sampling(temperature=1.0), rng, 3) for _ in range(4000)], minlength=3)
    np.testing.assert_allclose(counts / 4000, [0.7, 0.2, 0.1], atol=0.03)


def test_bad_settings_are_user_errors():
    with pytest.raises(BlueprintError):
        Sampling(temperature=-1)
    with pytest.raises(BlueprintError):
        Sampling(top_k=0)
    with pytest.raises(BlueprintError):
        Sampling(top_p=1.5)


def test_seeded_generation_is_reproducible_and_inside_the_vocab(builds):
    model = runtime.load(builds("gpt2-tiny").directory)
    hot = Sampling(temperature=50.0)  # near uniform: unmasked, ids 250..255 would show up
    runs = [model.generate([5, 6], max_new_tokens=60, sampling=hot, seed=s, stop_ids=[]).ids for s in range(4)]
    assert all(max(r) < model.vocab_limit == 250 for r in runs)
    assert runs[0] == model.generate([5, 6], max_new_tokens=60, sampling=hot, seed=0, stop_ids=[]).ids
    assert runs[0] != runs[1]
    nucleus = Sampling(temperature=0.9, top_k=40, top_p=0.9)
    a = model.generate([5, 6], max_new_tokens=20, sampling=nucleus, seed=7, stop_ids=[]).ids
    assert a == model.generate([5, 6], max_new_tokens=20, sampling=nucleus, seed=7, stop_ids=[]).ids


def test_runtime_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, blueprint.runtime, blueprint.commands.run; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
