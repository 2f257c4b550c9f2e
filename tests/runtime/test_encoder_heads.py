"""Encoder heads through the runtime and `blueprint run`: masked-LM top-k at [MASK] positions and
classification scores, each against the torch graph of the same build.

bert-tiny with its head swapped (masked_lm with a tokenizer of 250 real ids inside the padded
256-id vocabulary; classification with 3 labels) is built once per module.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from buildfixtures import SPECS
from tokenizers import Tokenizer, models, pre_tokenizers

from blueprint import cli, runtime
from compiler.export.build import build
from compiler.export.io import input_names

TOL = 1e-4
BERT_HEAD = "head: {kind: embeddings, pooling: cls, pooler: dense_tanh}"
BERT_TOKENIZER = "tokenizer: {vocab_size: 256, pad_id: 0, mask_id: 4}"


@pytest.fixture(scope="module")
def head_builds(tmp_path_factory):
    root = tmp_path_factory.mktemp("heads")
    text = (SPECS / "bert-tiny.yaml").read_text()
    assert BERT_HEAD in text and BERT_TOKENIZER in text
    variants = {
        "mlm": text.replace(BERT_HEAD, "head: {kind: masked_lm}")
                   .replace(BERT_TOKENIZER, "tokenizer: {vocab_size: 250, pad_id: 0, mask_id: 4}"),
        "cls": text.replace(BERT_HEAD, "head: {kind: classification, num_labels: 3}"),
        "one": text.replace(BERT_HEAD, "head: {kind: classification, num_labels: 1}"),
        "f16": text.replace("name: bert-tiny", "name: bert-tiny\ndtype: float16"),
    }
    out = {}
    for name, spec_text in variants.items():
        (root / f"{name}.yaml").write_text(spec_text.replace("name: bert-tiny", f"name: bert-{name}"))
        out[name] = build(root / f"{name}.yaml", root / name)
        assert out[name].report.ok
    return out


def _torch_outputs(torch_model, result, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    module = torch_model(result, kv_cache=False)
    spec = runtime.open_build(result.directory).spec
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    with torch.no_grad():
        out = module(*[torch.from_numpy(feeds[n]) for n in input_names(spec, False)])
    return {k: v.numpy() for k, v in out.items()}


def test_fill_mask_top_k_matches_torch(head_builds, torch_model):
    result = head_builds["mlm"]
    model = runtime.load(result.directory)
    ids = [2, 10, 4, 11, 12, 4, 3]
    preds = model.fill_mask(ids, top_k=5)
    assert [p["position"] for p in preds] == [2, 5]
    logits = _torch_outputs(torch_model, result, np.array([ids]), np.ones((1, len(ids)), dtype=np.int64))["logits"][0]
    for p in preds:
        row = logits[p["position"]].astype(np.float64)[:250]  # the tokenizer's 250 real ids
        probs = np.exp(row - row.max())
        probs /= probs.sum()
        want = np.argsort(-probs, kind="stable")[:5]
        assert [t["id"] for t in p["top"]] == want.tolist()
        np.testing.assert_allclose([t["prob"] for t in p["top"]], probs[want], atol=TOL, rtol=0)


def test_fill_mask_never_offers_a_padded_id(head_builds):
    model = runtime.load(head_builds["mlm"].directory)
    assert model.build.vocab_limit == 250 < model.spec.vocab_size
    top = model.fill_mask([2, 4, 3], top_k=300)[0]["top"]
    assert len(top) == 250 and max(t["id"] for t in top) < 250
    assert sum(t["prob"] for t in top) == pytest.approx(1.0)


def test_fill_mask_from_text_through_the_cli(head_builds, tmp_path, capsys):
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4, **{f"w{i}": i for i in range(5, 250)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(["[MASK]"])
    tok.save(str(tmp_path / "tok.json"))
    d = head_builds["mlm"].directory
    assert cli.main(["run", str(d), "--text", "w7 [MASK] w9", "--tokenizer", str(tmp_path / "tok.json"), "--k", "2",
                     "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    want = runtime.load(d).fill_mask([7, 4, 9], top_k=2)
    assert data["predictions"] == [want]


def test_classification_scores_match_torch_on_a_padded_batch(head_builds, torch_model, capsys):
    result = head_builds["cls"]
    model = runtime.load(result.directory)
    batch = [[2, 10, 11, 12, 13, 14, 3], [2, 30, 3], [2, 50, 51, 3]]
    scores = model.classify(batch)
    assert scores.shape == (3, 3)
    np.testing.assert_allclose(scores.sum(-1), 1.0, atol=1e-12)
    mask = model.run(batch)["attention_mask"]
    ids = np.zeros(mask.shape, dtype=np.int64)
    for r, row in enumerate(batch):
        ids[r, : len(row)] = row
    logits = _torch_outputs(torch_model, result, ids, mask)["logits"].astype(np.float64)
    want = np.exp(logits - logits.max(-1, keepdims=True))
    want /= want.sum(-1, keepdims=True)
    np.testing.assert_allclose(scores, want, atol=TOL, rtol=0)
    for r, row in enumerate(batch):  # padding does not change a row's scores
        np.testing.assert_allclose(model.classify([row])[0], scores[r], atol=TOL, rtol=0)
    assert cli.main(["run", str(result.directory), *sum((["--ids", " ".join(map(str, r))] for r in batch), []),
                     "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose(data["scores"], scores, atol=1e-12)
    assert data["labels"] == scores.argmax(-1).tolist()


def test_one_label_classification_shows_the_raw_score(head_builds, torch_model, capsys):
    """A softmax over one label is 1.0 for every input; the raw score is what the head computes
    (transformers treats num_labels == 1 as regression)."""
    result = head_builds["one"]
    model = runtime.load(result.directory)
    batch = [[2, 10, 11, 12, 3], [2, 30, 3], [2, 50, 51, 52, 53, 3]]
    scores = model.classify(batch)
    mask = model.run(batch)["attention_mask"]
    ids = np.zeros(mask.shape, dtype=np.int64)
    for r, row in enumerate(batch):
        ids[r, : len(row)] = row
    logits = _torch_outputs(torch_model, result, ids, mask)["logits"]
    assert scores.shape == (3, 1)
    np.testing.assert_allclose(scores, logits, atol=TOL, rtol=0)
    assert len({round(float(v), 6) for v in scores[:, 0]}) == 3  # not a constant 1.0
    args = sum((["--ids", " ".join(map(str, r))] for r in batch), [])
    assert cli.main(["run", str(result.directory), *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"input {r}: score {v:+.4f}" for r, v in enumerate(scores[:, 0])]
    assert cli.main(["run", str(result.directory), *args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"scores": scores[:, 0].tolist()}


def test_fp16_encoder_cosines_are_computed_in_float32_or_wider(head_builds, capsys):
    """An fp16 build's embeddings are exact in float32; a cosine computed in fp16 made an input's
    similarity with itself 1.0010."""
    result = head_builds["f16"]
    assert result.manifest["dtype"] == "fp16"
    model = runtime.load(result.directory)
    batch = [[2, 10, 11, 12, 13, 14, 3], [2, 30, 31, 3], [2, 50, 51, 52, 3]]
    emb = model.encode(batch)
    assert emb.dtype == np.float32
    assert cli.main(["run", str(result.directory), *sum((["--ids", " ".join(map(str, r))] for r in batch), []),
                     "--json"]) == 0
    cosine = np.array(json.loads(capsys.readouterr().out)["cosine"])
    np.testing.assert_allclose(np.diag(cosine), 1.0, atol=1e-12, rtol=0)
    wide = emb.astype(np.float64)
    unit = wide / np.linalg.norm(wide, axis=-1, keepdims=True)
    np.testing.assert_allclose(cosine, unit @ unit.T, atol=1e-12, rtol=0)
