"""Bad flags and bad data are clear errors (exit 1, no traceback) before any work: nothing is
tokenized, trained or written beyond the (possibly new) --out folder."""

from __future__ import annotations

import importlib.util

import pytest

from trainhelpers import GPT_DROPOUT, LLAMA, SMALL_DATA, train, write_spec

ENCODER = LLAMA.replace("head: {kind: causal_lm}", "head: {kind: embeddings, pooling: mean}").replace(
    "attention: {num_heads: 4, num_kv_heads: 2}", "attention: {num_heads: 4, num_kv_heads: 2, causal: false}")


def _fails(capsys, *args) -> str:
    err = train(*args, expect=1, capsys=capsys)
    assert "Traceback" not in err
    return err


@pytest.fixture
def spec(tmp_path):
    return write_spec(tmp_path)


def _untouched(out):
    assert not (out / "data").exists() and not (out / "metrics.jsonl").exists() and not (out / "final").exists()


@pytest.mark.parametrize("flags,message", [
    (["--batch-size", "6", "--grad-accum", "4"], "--batch-size 6 is not divisible by 1 process(es) x --grad-accum 4"),
    (["--seq-len", "129"], "--seq-len 129 exceeds the spec's max_seq_len (128)"),
    (["--train-tokenizer", "1024"], "--train-tokenizer 1024 is larger than the spec's vocab_size (512)"),
    (["--train-tokenizer", "100"], "needs 256 byte ids"),
    (["--parallel", "ddp"], "--parallel ddp needs processes started by torchrun"),
    (["--checkpointing", "memory_budget:1KiB"], "memory_budget 1.0 KiB cannot be met at batch 8 x seq_len 128"),
    (["--checkpointing", "sometimes"], "--checkpointing 'sometimes'"),
    (["--warmup", "5", "--steps", "5"], "--warmup 5 leaves no training"),
    (["--eval-data", SMALL_DATA[0]], "--eval-data without --eval-every"),
    (["--init-weights", "/nonexistent/w"], "--init-weights /nonexistent/w: no such file"),
])
def test_flag_errors(spec, tmp_path, capsys, flags, message):
    tok = ["--train-tokenizer", "512"] if "--train-tokenizer" not in flags else []
    err = _fails(capsys, spec, "--data", *SMALL_DATA, "--out", tmp_path / "out", *tok, *flags)
    assert message in err
    _untouched(tmp_path / "out")


def test_no_tokenizer_and_two_tokenizers(spec, tmp_path, capsys, tokenizer):
    err = _fails(capsys, spec, "--data", *SMALL_DATA, "--out", tmp_path / "o")
    assert "no tokenizer" in err and "--train-tokenizer VOCAB" in err
    with pytest.raises(SystemExit) as stop:  # argparse: the two flags exclude each other
        train(spec, "--data", *SMALL_DATA, "--out", tmp_path / "o", "--tokenizer", tokenizer,
              "--train-tokenizer", "300")
    assert stop.value.code == 2 and "not allowed with argument --tokenizer" in capsys.readouterr().err


def test_tokenizer_larger_than_the_spec(tmp_path, capsys, tokenizer):
    small = write_spec(tmp_path, LLAMA.replace("vocab_size: 512", "vocab_size: 300"))
    err = _fails(capsys, small, "--data", *SMALL_DATA, "--out", tmp_path / "o", "--tokenizer", tokenizer)
    assert "has 512 ids, more than the spec's vocab_size (300)" in err
    _untouched(tmp_path / "o")


def test_data_problems(spec, tmp_path, capsys):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "blob").write_bytes(b"\x00\xff" * 10)
    err = _fails(capsys, spec, "--data", tmp_path / "bin", "--out", tmp_path / "o", "--train-tokenizer", "300")
    assert "no text to train a tokenizer on" in err
    err = _fails(capsys, spec, "--data", tmp_path / "nowhere", "--out", tmp_path / "o", "--train-tokenizer", "300")
    assert "--data " + str(tmp_path / "nowhere") + ": no such file or folder" in err
    (tmp_path / "tiny.txt").write_text("x = 1\n")
    err = _fails(capsys, spec, "--data", tmp_path / "tiny.txt", "--out", tmp_path / "o2", "--train-tokenizer", "300")
    assert "fewer than one sequence of --seq-len 128 + 1" in err


def test_encoder_specs_are_refused(tmp_path, capsys):
    enc = write_spec(tmp_path, ENCODER)
    err = _fails(capsys, enc, "--data", *SMALL_DATA, "--out", tmp_path / "o", "--train-tokenizer", "300")
    assert "'embeddings' head" in err and "causal_lm" in err


def test_missing_extra(spec, tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    err = _fails(capsys, spec, "--data", *SMALL_DATA, "--out", tmp_path / "o", "--train-tokenizer", "300")
    assert "needs matplotlib" in err and "pip install 'blueprint[train]'" in err
    assert not (tmp_path / "o").exists()


def test_existing_run_and_foreign_checkpoints(spec, tmp_path, capsys, tokenizer):
    common = ["--data", *SMALL_DATA, "--tokenizer", tokenizer, "--steps", "2", "--batch-size", "2",
              "--seq-len", "16", "--save-every", "2"]
    train(spec, *common, "--out", tmp_path / "run", capsys=capsys)
    err = _fails(capsys, spec, *common, "--out", tmp_path / "run")
    assert "already holds a training run" in err and "--resume" in err
    other = write_spec(tmp_path / "other", LLAMA.replace("embed_dim: 64", "embed_dim: 32"))
    err = _fails(capsys, other, *common, "--out", tmp_path / "o2", "--resume", tmp_path / "run" / "checkpoint-2")
    assert "trained for another spec" in err
    err = _fails(capsys, spec, *common[:-6], "--steps", "2", "--batch-size", "4", "--seq-len", "16",
                 "--out", tmp_path / "o3", "--resume", tmp_path / "run" / "checkpoint-2")
    assert "--batch-size 2 (checkpoint) vs 4" in err
    err = _fails(capsys, spec, *common, "--out", tmp_path / "o4", "--resume", tmp_path)
    assert "not a blueprint training checkpoint" in err
    err = _fails(capsys, spec, *common, "--out", tmp_path / "o5", "--resume")
    assert "no checkpoint-N folder" in err
    gpt = write_spec(tmp_path / "g", GPT_DROPOUT)
    err = _fails(capsys, gpt, *common, "--out", tmp_path / "o6", "--resume", tmp_path / "run" / "checkpoint-2")
    assert "another spec" in err
