"""A failed or interrupted build leaves nothing behind and keeps the previous build intact.

The export is replaced by a fast stand-in that returns an already exported graph (optionally
with one op broken), so these tests exercise the build's failure handling without re-exporting.
"""

from __future__ import annotations

import json
import shutil

import onnx_ir as ir
import pytest
from buildfixtures import SPECS, compile_fn

from blueprint.errors import BlueprintError
from compiler.export import build as build_mod
from compiler.export import onnx_export


def _reuse_export(source_dir, break_op: str | None = None):
    """An export_model replacement returning the graph of ``source_dir``, with its first float
    ``break_op`` node turned into a different op (Add -> Sub)."""

    def fake(module, spec, *, kv_cache, opset=23, dtype="fp32"):
        model = ir.load(source_dir / "model.onnx")
        if break_op:
            node = next(n for n in model.graph.all_nodes()
                        if n.op_type == break_op and n.outputs[0].dtype == ir.DataType.FLOAT)
            node.op_type = {"Add": "Sub"}[break_op]
        return model

    return fake


def _snapshot(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def _siblings(d):
    return sorted(p.name for p in d.parent.iterdir())


def test_broken_op_fails_verification_and_keeps_previous(builds, tmp_path, monkeypatch):
    good = builds("gpt2-tiny").directory
    target = tmp_path / "out"
    shutil.copytree(good, target)
    before = _snapshot(target)
    monkeypatch.setattr(onnx_export, "export_model", _reuse_export(good, break_op="Add"))
    with pytest.raises(BlueprintError) as err:
        build_mod.build(SPECS / "gpt2-tiny.yaml", target, compile_fn=compile_fn())
    text = err.value.format()
    assert "verification failed" in text and "FAIL" in text and "logits" in text and "tolerance 1e-04" in text
    assert _snapshot(target) == before
    assert _siblings(target) == ["out"]  # no temp directory left


def test_failed_first_build_leaves_nothing(builds, tmp_path, monkeypatch):
    good = builds("gpt2-tiny").directory
    monkeypatch.setattr(onnx_export, "export_model", _reuse_export(good, break_op="Add"))
    with pytest.raises(BlueprintError):
        build_mod.build(SPECS / "gpt2-tiny.yaml", tmp_path / "new", compile_fn=compile_fn())
    assert list(tmp_path.iterdir()) == []


def test_interrupt_during_verify_keeps_previous(builds, tmp_path, monkeypatch):
    good = builds("gpt2-tiny").directory
    target = tmp_path / "out"
    shutil.copytree(good, target)
    before = _snapshot(target)
    monkeypatch.setattr(onnx_export, "export_model", _reuse_export(good))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build_mod.verify_mod, "verify", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_mod.build(SPECS / "gpt2-tiny.yaml", target, compile_fn=compile_fn())
    assert _snapshot(target) == before
    assert _siblings(target) == ["out"]


def test_exporter_error_is_a_blueprint_error(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("unsupported op aten::frobnicate\nlong trace ...")

    monkeypatch.setattr(onnx_export, "export_model", boom)
    with pytest.raises(BlueprintError, match="export of 'gpt2-tiny' failed: unsupported op aten::frobnicate"):
        build_mod.build(SPECS / "gpt2-tiny.yaml", tmp_path / "x", compile_fn=compile_fn())
    assert list(tmp_path.iterdir()) == []


def test_successful_rebuild_replaces_previous_and_copies_tokenizer(builds, tmp_path, monkeypatch):
    """A good rebuild replaces the old directory whole (stale files vanish); a spec whose
    tokenizer.path exists gets its tokenizer.json copied (path relative to the spec file)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    good = builds("gpt2-tiny").directory
    vocab = {f"w{i}": i for i in range(250)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    (tmp_path / "tok").mkdir()
    tok.save(str(tmp_path / "tok" / "my-tokenizer.json"))
    text = (SPECS / "gpt2-tiny.yaml").read_text().replace(
        "tokenizer: {vocab_size: 250, eos_id: 249}", "tokenizer: {vocab_size: 250, eos_id: 249, path: tok/my-tokenizer.json}")
    assert "my-tokenizer" in text
    spec_path = tmp_path / "gpt2-tiny.yaml"
    spec_path.write_text(text)

    target = tmp_path / "out"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    monkeypatch.setattr(onnx_export, "export_model", _reuse_export(good))
    result = build_mod.build(spec_path, target, compile_fn=compile_fn())
    names = sorted(p.name for p in target.iterdir())
    assert names == ["manifest.json", "model.onnx", "spec.lock.yaml", "tokenizer.json", "weights.safetensors"]
    assert (target / "tokenizer.json").read_bytes() == (tmp_path / "tok" / "my-tokenizer.json").read_bytes()
    assert "tokenizer.json" in json.loads((target / "manifest.json").read_text())["files"]
    assert result.report.ok
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpt2-tiny.yaml", "out", "tok"]


def test_missing_tokenizer_path_is_a_clear_error(tmp_path, monkeypatch):
    text = (SPECS / "gpt2-tiny.yaml").read_text().replace("eos_id: 249}", "eos_id: 249, path: nope.json}")
    (tmp_path / "s.yaml").write_text(text)
    monkeypatch.setattr(onnx_export, "export_model", lambda *a, **k: pytest.fail("should not reach export"))
    with pytest.raises(BlueprintError, match="tokenizer.path 'nope.json' not found"):
        build_mod.build(tmp_path / "s.yaml", tmp_path / "out", compile_fn=compile_fn())


def test_ort_runtime_failure_is_reported(builds, tmp_path, monkeypatch):
    """A graph that onnxruntime cannot run (here: a shape computation broken) fails the build
    with the case and shape named, not with an onnxruntime traceback."""
    good = builds("gpt2-tiny").directory

    def fake(module, spec, *, kv_cache, opset=23, dtype="fp32"):
        model = ir.load(good / "model.onnx")
        node = next(n for n in model.graph.all_nodes() if n.op_type == "Add" and n.outputs[0].dtype == ir.DataType.INT64)
        node.op_type = "Mul"
        return model

    monkeypatch.setattr(onnx_export, "export_model", fake)
    with pytest.raises(BlueprintError, match="verification failed: .*onnxruntime"):
        build_mod.build(SPECS / "gpt2-tiny.yaml", tmp_path / "out", compile_fn=compile_fn())
    assert list(tmp_path.iterdir()) == []
