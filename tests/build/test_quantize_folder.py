"""What a quantized build folder holds: the quantized model and the float weights it still reads
(model.onnx + model.onnx.data), not the fp32 checkpoint, unless ``--keep-checkpoint``.

The two folders run the same graph on the same weights, so their logits are bit-equal; the
commands that need fp32 weights (export-hf, inspect, build --weights) refuse the lean folder
with an error that names the flag, and no traceback.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from buildfixtures import SPECS, decoder_feeds, load_tiny

from blueprint import cli, runtime
from blueprint.buildinfo import sha256_file
from compiler.export import build as build_mod
from compiler.export import quantize


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Lean and kept int4 folders of llama-tiny."""
    root = tmp_path_factory.mktemp("qfolders")
    out = {}
    for name, keep in (("lean", False), ("kept", True)):
        out[name] = build_mod.build(SPECS / "llama-tiny.yaml", root / name, verify=False,
                                    quantize=quantize.QuantizeOptions("int4", min_agreement=0.0,
                                                                      keep_checkpoint=keep)).directory
    return out


def _locations(directory) -> set[str]:
    model = onnx.load(str(directory / "model.onnx"), load_external_data=False)
    return {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}


def test_lean_folder_holds_only_what_the_quantized_model_reads(folders):
    lean, kept = folders["lean"], folders["kept"]
    data = {"model.onnx.data"}  # every tensor over 1 KiB, onnxruntime reads the file itself
    for folder, keep in ((lean, False), (kept, True)):
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["quantization"]["keep_checkpoint"] is keep
        assert set(manifest["files"]) == {p.name for p in folder.iterdir()} - {"manifest.json"}
        assert all(sha256_file(folder / name) == digest for name, digest in manifest["files"].items())
    assert not (lean / "weights.safetensors").exists()
    assert _locations(lean) == data  # the float embedding and norms are stored beside the 4-bit ones
    assert _locations(kept) == data | {"weights.safetensors"}  # ... or point into the kept checkpoint
    spec = load_tiny("llama-tiny")
    a, b = runtime.open_build(lean).session, runtime.open_build(kept).session
    for feeds in decoder_feeds(spec):
        (la,), (lb,) = a.run(["logits"], feeds), b.run(["logits"], feeds)
        assert np.array_equal(la, lb)


@pytest.mark.parametrize("command", [["export-hf", "{lean}", "-o", "{tmp}/hf"],
                                     ["inspect", "{lean}", "-o", "{tmp}/report", "--induction"],
                                     ["build", str(SPECS / "llama-tiny.yaml"), "-o", "{tmp}/again", "--weights", "{lean}"]])
def test_commands_needing_fp32_weights_name_the_flag(folders, tmp_path, capsys, command):
    args = [part.format(lean=folders["lean"], tmp=tmp_path) for part in command]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert "quantized build without its fp32 weights" in err and "--keep-checkpoint" in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_a_damaged_fp32_build_is_not_called_quantized(builds, tmp_path, capsys):
    """An fp32 build that lost its weights.safetensors is incomplete, not a lean quantized build."""
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(builds("llama-tiny").directory, damaged)
    (damaged / "weights.safetensors").unlink()
    assert cli.main(["export-hf", str(damaged), "-o", str(tmp_path / "hf")]) == 1
    err = capsys.readouterr().err
    assert "weights.safetensors" in err and "quantized" not in err and "Traceback" not in err
