"""`blueprint run`: decoder generation (ids and text), encoder outputs, --json, user errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from blueprint import cli


@pytest.fixture()
def word_tokenizer(tmp_path):
    """A word-level tokenizer: 'w0' ... 'w249' (ids 0..249)."""
    tok = Tokenizer(models.WordLevel({f"w{i}": i for i in range(250)}, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    return path


def _run(capsys, *argv):
    rc = cli.main(["run", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_run_decoder_json(builds, capsys):
    d = builds("llama-tiny").directory
    rc, out, _ = _run(capsys, d, "--ids", "1 2 3", "--max-new-tokens", "7", "--json", "--eos", "")
    assert rc == 0
    data = json.loads(out)
    assert data["prompt_ids"] == [1, 2, 3] and len(data["ids"]) == 7 and data["stop_reason"] == "max_new_tokens"
    assert all(0 <= i < 250 for i in data["ids"])
    rc, out2, _ = _run(capsys, d, "--ids", "1 2 3", "--max-new-tokens", "7", "--json", "--eos", "")
    assert json.loads(out2)["ids"] == data["ids"]  # greedy is deterministic
    rc, out3, _ = _run(capsys, d, "--ids", "1 2 3", "--max-new-tokens", "7", "--json", "--temperature", "1",
                       "--top-p", "0.9", "--seed", "4")
    rc, out4, _ = _run(capsys, d, "--ids", "1 2 3", "--max-new-tokens", "7", "--json", "--temperature", "1",
                       "--top-p", "0.9", "--seed", "4")
    assert json.loads(out3)["ids"] == json.loads(out4)["ids"]


def test_run_decoder_streams_ids(builds, capsys):
    rc, out, err = _run(capsys, builds("gpt2-tiny").directory, "--ids", "5 6", "--max-new-tokens", "4")
    assert rc == 0
    prompt, generated = out.split("|")
    assert prompt.split() == ["5", "6"] and len(generated.split()) == 4
    assert "4 tokens" in err


def test_run_decoder_text_with_tokenizer(builds, capsys, word_tokenizer):
    d = builds("gpt2-tiny").directory
    rc, out, _ = _run(capsys, d, "--text", "w5 w17 w42", "--tokenizer", word_tokenizer, "--max-new-tokens", "5",
                      "--json", "--eos", "")
    data = json.loads(out)
    assert rc == 0 and data["prompt_ids"] == [5, 17, 42]
    assert data["text"].split() == [f"w{i}" for i in data["ids"]]
    rc, text_out, _ = _run(capsys, d, "--text", "w5 w17 w42", "--tokenizer", word_tokenizer, "--max-new-tokens", "5",
                           "--eos", "")
    assert text_out.startswith("w5 w17 w42") and text_out.split()[3:] == [f"w{i}" for i in data["ids"]]


def test_run_encoder_json(builds, capsys):
    rc, out, _ = _run(capsys, builds("bert-tiny").directory, "--ids", "2 10 11 3", "--ids", "2 5 3", "--json")
    data = json.loads(out)
    assert rc == 0 and len(data["embeddings"]) == 2 and len(data["embeddings"][0]) == 64
    a, b = (np.array(e) for e in data["embeddings"])
    cos = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert data["cosine"][0][1] == pytest.approx(cos, abs=1e-6) and data["cosine"][0][0] == pytest.approx(1.0)
    rc, out, _ = _run(capsys, builds("bert-tiny").directory, "--ids", "2 10 11 3", "--ids", "2 5 3")
    assert out.splitlines()[2] == "cosine similarity" and f"{cos:+.4f}" in out.splitlines()[3]
    rc, out, _ = _run(capsys, builds("modernbert-tiny").directory, "--ids", "2 10 11 3")
    assert rc == 0 and out.startswith("input 0: [64] norm")


@pytest.mark.parametrize("argv,message", [
    (["--ids", "1 x"], "--ids takes integers"),
    (["--ids", "1 999"], "outside the model's vocabulary"),
    (["--text", "hello"], "needs a tokenizer"),
    ([], "no input"),
    (["--ids", "1", "--temperature", "-1"], "temperature must be >= 0"),
])
def test_run_user_errors(builds, capsys, argv, message):
    rc, _, err = _run(capsys, builds("gpt2-tiny").directory, *argv)
    assert rc == 1 and message in err and "Traceback" not in err


def test_run_on_a_non_build(tmp_path, capsys):
    rc, _, err = _run(capsys, tmp_path, "--ids", "1")
    assert rc == 1 and "not a build directory" in err
