"""A failed or interrupted build leaves nothing behind and keeps the previous build intact.

The export is replaced by a fast stand-in that returns an already exported graph (optionally
with one op broken), so these tests exercise the build's failure handling without re-exporting.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import onnx_ir as ir
import pytest
from buildfixtures import SPECS

import blueprint
from blueprint import cli
from blueprint.errors import BlueprintError
from compiler.export import build as build_mod
from compiler.export import onnx_export


def _reuse_export(source_dir, break_op: str | None = None):
    """An export_model replacement returning the graph of ``source_dir``, with its first float
    ``break_op`` node turned into a different op (Add -> Sub)."""

    def fake(module, spec, *, kv_cache, opset=23, dtype="fp32", **_):
        model = ir.load(source_dir / "model.onnx")
        if break_op:  # emitted (fused) nodes carry no output type: onnxruntime infers it; none adds ints
            node = next(n for n in model.graph.all_nodes()
                        if n.op_type == break_op and n.outputs[0].dtype in (ir.DataType.FLOAT, None))
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
        build_mod.build(SPECS / "gpt2-tiny.yaml", target)
    text = err.value.format()
    assert "verification failed" in text and "FAIL" in text and "logits" in text and "max |ort - f64|" in text
    assert "torch fp32 itself" in text
    assert _snapshot(target) == before
    assert _siblings(target) == ["out"]  # no temp directory left


def test_failed_first_build_leaves_nothing(builds, tmp_path, monkeypatch):
    good = builds("gpt2-tiny").directory
    monkeypatch.setattr(onnx_export, "export_model", _reuse_export(good, break_op="Add"))
    with pytest.raises(BlueprintError):
        build_mod.build(SPECS / "gpt2-tiny.yaml", tmp_path / "new")
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
        build_mod.build(SPECS / "gpt2-tiny.yaml", target)
    assert _snapshot(target) == before
    assert _siblings(target) == ["out"]


def test_exporter_error_is_a_blueprint_error(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("unsupported op aten::frobnicate\nlong trace ...")

    monkeypatch.setattr(onnx_export, "export_model", boom)
    with pytest.raises(BlueprintError, match="export of 'gpt2-tiny' failed: unsupported op aten::frobnicate"):
        build_mod.build(SPECS / "gpt2-tiny.yaml", tmp_path / "x")
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
    shutil.copytree(good, target)  # a previous build
    monkeypatch.setattr(onnx_export, "export_model", _reuse_export(good))
    result = build_mod.build(spec_path, target)
    names = sorted(p.name for p in target.iterdir())
    assert names == ["genai_config.json", "manifest.json", "model.onnx", "spec.lock.yaml", "tokenizer.json",
                     "weights.safetensors"]
    assert (target / "tokenizer.json").read_bytes() == (tmp_path / "tok" / "my-tokenizer.json").read_bytes()
    assert "tokenizer.json" in json.loads((target / "manifest.json").read_text())["files"]
    assert result.report.ok
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpt2-tiny.yaml", "out", "tok"]
    # the stored lock names the build's own copy: it validates in place, no source path leaks
    lock = (target / "spec.lock.yaml").read_text()
    assert "my-tokenizer" not in lock
    assert blueprint.load_spec(target / "spec.lock.yaml").tokenizer.path == "tokenizer.json"
    assert cli.main(["validate", "-q", str(target / "spec.lock.yaml")]) == 0
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["spec_sha256"] == hashlib.sha256(lock.encode()).hexdigest()


def test_missing_tokenizer_path_is_a_clear_error(tmp_path, monkeypatch):
    text = (SPECS / "gpt2-tiny.yaml").read_text().replace("eos_id: 249}", "eos_id: 249, path: nope.json}")
    (tmp_path / "s.yaml").write_text(text)
    monkeypatch.setattr(onnx_export, "export_model", lambda *a, **k: pytest.fail("should not reach export"))
    with pytest.raises(BlueprintError, match="tokenizer.path 'nope.json' not found"):
        build_mod.build(tmp_path / "s.yaml", tmp_path / "out")


def test_ort_runtime_failure_is_reported(builds, tmp_path, monkeypatch):
    """A graph that onnxruntime cannot run (here: a shape computation broken) fails the build
    with the case and shape named, not with an onnxruntime traceback."""
    # the plain export, whose first int64 Add is a shape computation
    good = build_mod.build(SPECS / "gpt2-tiny.yaml", tmp_path / "good", verify=False, portable=True).directory

    def fake(module, spec, *, kv_cache, opset=23, dtype="fp32", **_):
        model = ir.load(good / "model.onnx")
        node = next(n for n in model.graph.all_nodes() if n.op_type == "Add" and n.outputs[0].dtype == ir.DataType.INT64)
        node.op_type = "Mul"
        return model

    monkeypatch.setattr(onnx_export, "export_model", fake)
    with pytest.raises(BlueprintError, match="verification failed: .*onnxruntime"):
        build_mod.build(SPECS / "gpt2-tiny.yaml", tmp_path / "out")
    assert list(tmp_path.iterdir()) == [good]


def test_a_directory_that_is_not_a_build_is_never_replaced(tmp_path, monkeypatch):
    """``-o src`` would move a source tree aside and delete it: refused before any work."""
    target = tmp_path / "src"
    target.mkdir()
    (target / "main.py").write_text("precious")
    monkeypatch.setattr(onnx_export, "export_model", lambda *a, **k: pytest.fail("should not reach export"))
    with pytest.raises(BlueprintError, match="not a previous build"):
        build_mod.build(SPECS / "gpt2-tiny.yaml", target)
    assert (target / "main.py").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(BlueprintError, match="not a build directory"):
        build_mod.build(SPECS / "gpt2-tiny.yaml", tmp_path / "file")
    assert (tmp_path / "file").read_text() == "x"


def test_ctrl_c_wrapped_by_the_exporter_is_still_an_interrupt(builds, tmp_path, monkeypatch):
    """Ctrl-C landing in one of the exporter's lazy imports surfaces as its own error type
    (TorchExportError from AttributeError from KeyboardInterrupt); the build must stop as
    interrupted, not report an export failure."""
    good = builds("gpt2-tiny").directory
    target = tmp_path / "out"
    shutil.copytree(good, target)
    before = _snapshot(target)

    def interrupted_inside(*args, **kwargs):
        try:
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt as ki:
                raise AttributeError("module 'torch._dynamo' has no attribute 'exc'") from ki
        except AttributeError as attr:
            raise RuntimeError("Failed to export the model with torch.export.") from attr

    monkeypatch.setattr(onnx_export, "export_model", interrupted_inside)
    with pytest.raises(KeyboardInterrupt):
        build_mod.build(SPECS / "gpt2-tiny.yaml", target)
    assert _snapshot(target) == before
    assert _siblings(target) == ["out"]


def test_real_export_failure_names_the_root_cause(tmp_path, monkeypatch):
    """The exporter's own first line is a generic "step 1/3" banner with ANSI colour codes; the
    report must carry the reason (here a data-dependent branch) and no escape codes."""
    import torch

    real = build_mod.default_compile

    def data_dependent(spec, *, kv_cache, **kwargs):
        inner = real(spec, kv_cache=kv_cache, **kwargs)

        class Branchy(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = inner

            def forward(self, *args):
                if args[0].sum().item() > 3:  # cannot be exported without a guard
                    return self.inner(*args)
                return self.inner(*args)

        return Branchy()

    monkeypatch.setattr(build_mod, "default_compile", data_dependent)
    with pytest.raises(BlueprintError) as err:
        build_mod.build(SPECS / "gpt2-tiny.yaml", tmp_path / "out")
    text = err.value.format()
    assert "export of 'gpt2-tiny' failed" in text and "data-dependent" in text, text
    assert "\x1b" not in text
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("opset", [0, 17, 10_000])
def test_an_opset_the_exporter_cannot_target_is_refused_up_front(tmp_path, capsys, opset):
    from blueprint import cli

    rc = cli.main(["build", str(SPECS / "gpt2-tiny.yaml"), "-o", str(tmp_path / "out"), "--opset", str(opset)])
    err = capsys.readouterr().err
    assert rc == 1 and f"--opset {opset} is not supported: use 18 to" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_an_export_in_another_opset_than_requested_fails(builds, tmp_path, monkeypatch):
    """When the version converter fails, the exporter returns the unconverted model; the build
    must fail instead of writing a manifest that claims the requested opset."""
    good = builds("gpt2-tiny").directory  # opset 23
    monkeypatch.setattr(onnx_export, "export_model", _reuse_export(good))
    with pytest.raises(BlueprintError, match="could not produce opset 24 .*gave opset 23"):
        build_mod.build(SPECS / "gpt2-tiny.yaml", tmp_path / "out", opset=24)
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_killed_builds_are_swept(builds, tmp_path, monkeypatch):
    """A SIGKILLed build (no cleanup possible) leaves .out.tmp-<pid>-* / .out.old-<pid>; the next
    build of the same target deletes those whose process is gone, and nothing else."""
    import os

    dead = 4_000_000  # above any pid_max in use: no such process
    while True:
        try:
            os.kill(dead, 0)
            dead += 1
        except ProcessLookupError:
            break
        except PermissionError:
            dead += 1
    leftovers = [f".out.tmp-{dead}-abc123", f".out.old-{dead}"]
    kept = [f".out.tmp-{os.getpid()}-running", f".other.tmp-{dead}-abc", ".out.notes"]
    for name in leftovers + kept:
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.onnx.data").write_bytes(b"x" * 10)
    monkeypatch.setattr(onnx_export, "export_model", _reuse_export(builds("gpt2-tiny").directory))
    build_mod.build(SPECS / "gpt2-tiny.yaml", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept + ["out"])


def test_disk_full_while_writing_weights_is_the_machines_error_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    """safetensors' Rust writer raises its own error type for the OS's ENOSPC; the user sees the
    machine's refusal (exit 1, no 'internal error'), and no output folder or temp file remains."""
    from compiler.weights import safetensors_io

    class SafetensorError(Exception):
        pass

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors_io, "save_file", full)
    monkeypatch.chdir(tmp_path)
    code = cli.main(["build", str(SPECS / "llama-tiny.yaml"), "-o", "out", "-q"])
    err = capsys.readouterr().err
    assert code == 1 and "No space left on device" in err and "internal error" not in err
    assert list(tmp_path.iterdir()) == []
