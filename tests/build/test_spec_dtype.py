"""The spec's ``dtype`` is the one source of truth: the compiled graph holds it, a build uses it
unless ``--dtype`` overrides it (and then the lock says so), weights are checked against the
dtype they will be stored in, and bfloat16, which onnxruntime's CPU provider cannot run, is
refused before any work."""

from __future__ import annotations


import pytest
import torch
from buildfixtures import SPECS

import blueprint
from blueprint.errors import BlueprintError
from compiler import compile_spec
from compiler.export import build as build_mod
from compiler.export import onnx_export


def _spec_file(tmp_path, dtype: str, name: str = "llama-tiny"):
    text = (SPECS / f"{name}.yaml").read_text().replace("vocab_size: 256\n", f"vocab_size: 256\ndtype: {dtype}\n", 1)
    path = tmp_path / f"{name}-{dtype}.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_compiled_graph_has_the_spec_dtype(tmp_path, dtype):
    spec = blueprint.load_spec(_spec_file(tmp_path, dtype))
    gm = compile_spec(spec).eval()
    assert {p.dtype for p in gm.parameters()} == {getattr(torch, dtype)}
    ids = torch.randint(0, 250, (2, 5))
    logits = gm(ids, torch.ones_like(ids), torch.arange(5).expand(2, 5))["logits"]
    assert logits.dtype == getattr(torch, dtype) and bool(torch.isfinite(logits).all())
    # the same seeded numbers, rounded to the dtype
    ref = compile_spec(spec.model_copy(update={"dtype": "float32"}))
    for (n, a), (_, b) in zip(gm.state_dict().items(), ref.state_dict().items()):
        assert torch.equal(a, b.to(a.dtype)), n


def test_a_float16_spec_builds_float16_without_flags(tmp_path):
    result = build_mod.build(_spec_file(tmp_path, "float16"), tmp_path / "out")
    assert result.manifest["dtype"] == "fp16" and result.report.ok
    assert blueprint.load_spec(result.directory / "spec.lock.yaml").dtype == "float16"


def test_dtype_flag_overrides_the_spec_and_the_lock_says_so(tmp_path, monkeypatch):
    seen = {}

    def stop(module, spec, **kwargs):
        seen["params"] = {p.dtype for p in module.parameters()}
        seen["spec"] = spec.dtype
        raise KeyboardInterrupt  # enough: the graph reached the exporter

    monkeypatch.setattr(onnx_export, "export_model", stop)
    with pytest.raises(KeyboardInterrupt):
        build_mod.build(_spec_file(tmp_path, "float16"), tmp_path / "out", dtype="fp32")
    assert seen == {"params": {torch.float32}, "spec": "float32"}


def test_bfloat16_is_refused_before_compiling(tmp_path, monkeypatch):
    monkeypatch.setattr(build_mod, "default_compile", lambda *a, **k: pytest.fail("compiled"))
    with pytest.raises(BlueprintError, match="cannot build the spec's dtype: bfloat16: onnxruntime's CPU provider "
                                             "has no bfloat16 kernels") as err:
        build_mod.build(_spec_file(tmp_path, "bfloat16"), tmp_path / "out")
    assert "--dtype fp32" in err.value.format()
    with pytest.raises(BlueprintError, match="cannot build --dtype bf16"):
        build_mod.build(SPECS / "llama-tiny.yaml", tmp_path / "out", dtype="bf16")
    assert not (tmp_path / "out").exists()


def test_fp16_build_checks_weights_against_float16(tmp_path, monkeypatch):
    """Weights beyond float16's range (65504) would become inf when halved, silently with
    --no-verify; they are refused by the weights check, naming the tensor."""
    from compiler.weights import save_weights

    spec = blueprint.load_spec(SPECS / "llama-tiny.yaml")
    state = compile_spec(spec).state_dict()
    state["layers.0.ffn.up_proj.weight"][0, 0] = 1.0e5
    save_weights(state, tmp_path / "w.safetensors")
    monkeypatch.setattr(onnx_export, "export_model", lambda *a, **k: pytest.fail("exported"))
    with pytest.raises(BlueprintError, match=r"'layers.0.ffn.up_proj.weight' has values of magnitude up to 1e\+05, "
                                             r"which overflow the spec's dtype float16"):
        build_mod.build(SPECS / "llama-tiny.yaml", tmp_path / "out", weights=tmp_path / "w.safetensors",
                        dtype="fp16", verify=False)
    assert not (tmp_path / "out").exists()
