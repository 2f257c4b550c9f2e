"""The data pipeline and schedule on their own: file discovery, packing, the batch order that
makes 1 and N processes (and K accumulation steps) see the same global batch, the LR schedule
and the --checkpointing flag."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from blueprint.errors import BlueprintError
from blueprint.train import data
from blueprint.train.loop import lr_at
from blueprint.train.options import parse_policy


def test_paths_expand_files_folders_and_globs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("x")
    (tmp_path / "a" / "__pycache__").mkdir()
    (tmp_path / "a" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (tmp_path / "a" / ".hidden").write_text("h")
    (tmp_path / "b.py").write_text("b")
    found = data.expand_paths([str(tmp_path / "a"), str(tmp_path / "*.py"), str(tmp_path / "b.py")])
    assert [p.name for p in found] == ["x.txt", "b.py"]  # no cache, no hidden file, no repeat
    with pytest.raises(BlueprintError, match="no such file"):
        data.expand_paths([str(tmp_path / "missing")])
    with pytest.raises(BlueprintError, match="matches no files"):
        data.expand_paths([str(tmp_path / "*.md")])


def test_binary_files_are_skipped(tmp_path):
    (tmp_path / "t.txt").write_text("héllo")
    (tmp_path / "b.bin").write_bytes(b"\xff\xfe\x00\x01")
    (tmp_path / "z.txt").write_bytes(b"a\x00b")
    docs, skipped = data.read_documents(sorted(tmp_path.iterdir()))
    assert docs == ["héllo"] and skipped == 2


def test_sequences_pack_documents_and_shift_targets():
    tokens = np.arange(23, dtype=np.uint16)
    seqs = data.Sequences(tokens, seq_len=5)
    assert seqs.count == 4  # (23 - 1) // 5: the last partial sequence is dropped
    ids, targets = seqs.get([0, 3])
    assert ids.tolist() == [[0, 1, 2, 3, 4], [15, 16, 17, 18, 19]]
    assert targets.tolist() == [[1, 2, 3, 4, 5], [16, 17, 18, 19, 20]]


@pytest.mark.parametrize("world,accum", [(1, 2), (2, 1), (2, 2), (4, 1)])
def test_processes_and_accumulation_split_the_same_global_batch(world, accum):
    order, batch = data.Order(13, seed=3), 8
    for step in range(5):  # crosses an epoch boundary (13 sequences, 8 per step)
        single = data.step_indices(order, step, batch, 0, 1, 1)[0]
        split = [i for r in range(world) for micro in data.step_indices(order, step, batch, r, world, accum)
                 for i in micro]
        assert split == single
        assert all(len(m) == batch // (world * accum) for m in data.step_indices(order, step, batch, 1 % world,
                                                                                  world, accum))


def test_each_epoch_visits_every_sequence_once_in_a_seeded_order():
    order = data.Order(10, seed=0)
    first, second = [order(g) for g in range(10)], [order(g) for g in range(10, 20)]
    assert sorted(first) == sorted(second) == list(range(10)) and first != second
    assert [data.Order(10, seed=0)(g) for g in range(20)] == first + second
    assert [data.Order(10, seed=1)(g) for g in range(10)] != first


def test_learning_rate_schedule():
    opts = SimpleNamespace(lr=1.0, warmup=4, steps=14, schedule="cosine")
    lrs = [lr_at(s, opts) for s in range(14)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))  # non-increasing after warm-up
    assert lrs[-1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 9 / 10)))
    assert lr_at(14, opts) == pytest.approx(0.1)  # the floor: 10% of --lr
    const = SimpleNamespace(lr=2.0, warmup=0, steps=5, schedule="constant")
    assert [lr_at(s, const) for s in range(5)] == [2.0] * 5


def test_checkpointing_flag_reads_like_the_spec():
    assert parse_policy("every_layer") == "every_layer"
    assert parse_policy("every:2").every == 2
    assert parse_policy("layers:0,3").layers == [0, 3]
    assert parse_policy("memory_budget:2GiB").memory_budget == 2 * 2**30
    for bad in ("sometimes", "every:x", "memory_budget:lots", "layers:"):
        with pytest.raises(BlueprintError, match="--checkpointing"):
            parse_policy(bad)


def test_token_file_round_trips(tmp_path, tokenizer):
    tok = data.load_tokenizer(tokenizer)
    path = data.token_file(["def f():\n    return 1\n", "x = 2"], tok, 0, tmp_path, "k" * 16)
    ids = data.open_tokens(path)
    expected = tok.encode("def f():\n    return 1\n").ids + [0] + tok.encode("x = 2").ids + [0]
    assert ids.dtype == np.uint16 and ids.tolist() == expected
    assert torch.equal(data.Sequences(ids, 3).get([0])[0], torch.tensor([expected[:3]]))
