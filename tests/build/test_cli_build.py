"""`blueprint build` end to end through the CLI: progress stages, byte-identical rebuilds from
another working directory, and the external-data path (forced with a small threshold)."""

from __future__ import annotations

import json

import onnx
from buildfixtures import SPECS

from blueprint import cli, runtime
from compiler.export import build as build_mod
from compiler.export import onnx_export


def _cli_build(tmp_path, monkeypatch, capsys, cwd_name, *extra):
    cwd = tmp_path / cwd_name
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    rc = cli.main(["build", str(SPECS / "llama-tiny.yaml"), "-o", "out", *extra])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return cwd / "out", captured


def test_rebuild_from_another_cwd_is_byte_identical_with_external_data(tmp_path, monkeypatch, capsys):
    """The weights live once, in weights.safetensors, which model.onnx references; a threshold
    of 0 also moves the exporter's larger constants to model.onnx.data."""
    monkeypatch.setattr(onnx_export, "EXTERNAL_DATA_THRESHOLD", 0)
    first, out = _cli_build(tmp_path, monkeypatch, capsys, "a")
    for i, stage in enumerate(build_mod.STAGES, 1):
        assert f"[{i}/5] {stage}" in out.err
    assert "passed" in out.err and "built out" in out.out
    second, _ = _cli_build(tmp_path, monkeypatch, capsys, "b", "-q")

    files = json.loads((first / "manifest.json").read_text())["files"]
    assert sorted(p.name for p in first.iterdir()) == sorted([*files, "manifest.json"])
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    graph = (first / "model.onnx").read_bytes()
    assert str(tmp_path).encode() not in graph and b".py" not in graph
    assert (first / "model.onnx").stat().st_size < (first / "weights.safetensors").stat().st_size / 10
    model = onnx.load(str(first / "model.onnx"), load_external_data=False)
    locations = {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}
    assert "weights.safetensors" in locations and locations <= {"weights.safetensors", "model.onnx.data"}
    assert ("model.onnx.data" in locations) == ("model.onnx.data" in files)
    # the runtime loads the external data relative to the model file, from any cwd
    monkeypatch.chdir(tmp_path)
    assert len(runtime.load(first).generate([1, 2, 3], max_new_tokens=3).ids) == 3


def test_bad_spec_is_reported_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text((SPECS / "llama-tiny.yaml").read_text().replace("num_heads: 4,", "num_heads: 3,"))
    rc = cli.main(["build", str(bad), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 1
    assert "Traceback" not in err and "bad.yaml" in err
    assert not (tmp_path / "out").exists()
