"""Shared pieces of the training tests: small specs, the stdlib corpus, running the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from blueprint.cli import main

REPO = Path(__file__).resolve().parents[2]
STDLIB = Path(os.path.dirname(os.__file__))

LLAMA = """\
name: train-llama
vocab_size: 512
max_seq_len: 128
embed_dim: 64
num_layers: 2
positional: {kind: rope, rope_base: 10000.0}
norm: {kind: rmsnorm, norm_eps: 1.0e-5}
block:
  attention: {num_heads: 4, num_kv_heads: 2}
  ffn: {kind: swiglu, hidden_dim: 192}
head: {kind: causal_lm}
training: {checkpointing: every_layer}
"""

# dropout everywhere and learned positions: exact resume needs the RNG state restored
GPT_DROPOUT = """\
name: train-gpt
vocab_size: 512
max_seq_len: 64
embed_dim: 64
num_layers: 2
tie_embeddings: true
dropout: {embed: 0.1, attention: 0.1, residual: 0.1}
positional: {kind: learned}
norm: {kind: layernorm}
block:
  attention: {num_heads: 4, qkv_bias: true, out_bias: true}
  ffn: {kind: mlp, activation: gelu, hidden_dim: 128, bias: true}
head: {kind: causal_lm}
training: {checkpointing: {every: 2}}
"""

SMALL_DATA = [str(STDLIB / "json")]  # ~60 KB of Python


def write_spec(folder: Path, text: str = LLAMA, name: str = "spec.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def train(*args, expect: int = 0, capsys=None) -> str:
    """Run ``blueprint train ARGS`` in this process; return stderr (when capsys is given)."""
    rc = main(["train", *map(str, args), "-q"])
    err = capsys.readouterr().err if capsys is not None else ""
    assert rc == expect, err
    return err


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def tokenizer_for(tmp_path_factory) -> Path:
    """A byte-level BPE of 512 ids trained once on SMALL_DATA by blueprint train itself."""
    folder = tmp_path_factory.mktemp("tok")
    spec = write_spec(folder)
    main(["train", str(spec), "--data", *SMALL_DATA, "--train-tokenizer", "512", "--out", str(folder / "run"),
          "--steps", "1", "--batch-size", "2", "--seq-len", "16", "-q"])
    return folder / "run" / "tokenizer.json"


