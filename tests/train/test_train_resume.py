"""Exact resume: a run resumed from checkpoint-k computes the same losses as the run that went
on uninterrupted (bit for bit: same data position, learning rate, optimizer state and RNG,
with dropout and activation checkpointing on); and K accumulation steps equal one big batch."""

from __future__ import annotations

import shutil

import pytest
import torch

from compiler.weights.safetensors_io import read_tensors
from trainhelpers import GPT_DROPOUT, LLAMA, SMALL_DATA, metrics, train, write_spec


def _common(tokenizer, steps=6):
    return ["--data", *SMALL_DATA, "--tokenizer", tokenizer, "--steps", steps, "--batch-size", "4",
            "--seq-len", "32", "--lr", "3e-3", "--warmup", "2", "--save-every", "3",
            "--eval-data", SMALL_DATA[0] + "/tool.py", "--eval-every", "3"]


def test_resume_continues_bit_for_bit(tmp_path, tokenizer):
    spec = write_spec(tmp_path, GPT_DROPOUT)
    whole, part = tmp_path / "whole", tmp_path / "part"
    train(spec, *_common(tokenizer), "--out", whole)
    # An interrupted run: its folder as it was after checkpoint-3 (metrics already past it).
    part.mkdir()
    shutil.copytree(whole / "checkpoint-3", part / "checkpoint-3")
    shutil.copy(whole / "metrics.jsonl", part / "metrics.jsonl")
    shutil.copytree(whole / "data", part / "data")
    train(spec, *_common(tokenizer), "--out", part, "--resume")  # the latest checkpoint in --out
    a, b = metrics(whole), metrics(part)
    assert [r["step"] for r in b] == list(range(1, 7))
    assert a[:3] == b[:3]  # the lines before the checkpoint are kept as they were
    for x, y in zip(a[3:], b[3:]):
        assert (x["loss"], x["lr"], x.get("eval_loss")) == (y["loss"], y["lr"], y.get("eval_loss"))
    assert a[0]["loss"] != a[1]["loss"]  # it did train
    w1, w2 = read_tensors(whole / "final" / "model.safetensors"), read_tensors(part / "final" / "model.safetensors")
    assert w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1)
    assert (part / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_needs_the_rng_to_be_exact(tmp_path, tokenizer):
    """The positive control: without the saved RNG state dropout draws other masks."""
    spec = write_spec(tmp_path, GPT_DROPOUT)
    whole, part = tmp_path / "whole", tmp_path / "part"
    train(spec, *_common(tokenizer), "--out", whole)
    shutil.copytree(whole / "checkpoint-3", part / "checkpoint-3")
    (part / "checkpoint-3" / "rng-0.pt").unlink()
    train(spec, *_common(tokenizer), "--out", tmp_path / "p2", "--resume", part / "checkpoint-3")
    assert metrics(whole)[3]["loss"] != metrics(tmp_path / "p2")[0]["loss"]


def test_accumulation_equals_one_big_batch(tmp_path, tokenizer):
    spec = write_spec(tmp_path, LLAMA)
    train(spec, *_common(tokenizer, 4), "--out", tmp_path / "k1")
    train(spec, *_common(tokenizer, 4), "--grad-accum", "4", "--out", tmp_path / "k4")
    for x, y in zip(metrics(tmp_path / "k1"), metrics(tmp_path / "k4")):
        assert x["loss"] == pytest.approx(y["loss"], abs=1e-5)
