"""Every tiny example spec builds, passes verification, and writes the contract's files."""

from __future__ import annotations

import hashlib
import json

import onnx
import pytest
from buildfixtures import DECODERS, TINY, load_tiny

import blueprint
from compiler.export.io import input_names, output_names
from compiler.export import verify as verify_mod


@pytest.mark.parametrize("name", TINY)
def test_tiny_spec_builds_and_verifies(builds, name):
    result = builds(name)
    d = result.directory
    assert result.report is not None and result.report.ok, result.report.format()
    assert result.report.dtype == "fp32"
    cases = {c.case: c for c in result.report.cases}
    assert {"padded batch", "long sequence", "single row"} <= set(cases)
    if name in DECODERS:
        assert cases["decode"].steps >= 3 and cases["single row"].steps >= 1  # real trajectories
    for c in result.report.cases:
        for out, err in c.errors.items():
            # the rule itself, and the absolute sizes a tiny fp32 model shows (both engines ~1e-7)
            assert err.nonfinite is None and err.ort <= verify_mod.FACTOR * err.torch + verify_mod.FLOOR["fp32"]
            assert 0 <= err.ort < 1e-5 and 0 <= err.torch < 1e-5, (c.case, out, err)
    assert result.manifest["verification"]["rule"] == result.report.rule
    assert {"model.onnx", "weights.safetensors", "spec.lock.yaml", "manifest.json"} <= {p.name for p in d.iterdir()}
    # nothing else left beside the build (no temp or old directories)
    assert [p.name for p in d.parent.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("name", TINY)
def test_manifest_and_signature(builds, name):
    d = builds(name).directory
    spec = load_tiny(name)
    manifest = json.loads((d / "manifest.json").read_text())
    for f, digest in manifest["files"].items():
        assert hashlib.sha256((d / f).read_bytes()).hexdigest() == digest, f
    lock = (d / "spec.lock.yaml").read_text()
    assert manifest["spec_sha256"] == hashlib.sha256(lock.encode()).hexdigest()
    assert blueprint.load_spec(d / "spec.lock.yaml") == spec
    assert set(manifest["versions"]) == {"blueprint", "torch", "onnx", "onnxruntime"}
    assert manifest["opset"] == 23

    kv = spec.is_decoder
    sig = manifest["signature"]
    fused = manifest["export"] == "fused"  # fused decoders take an optional logits_to_keep (default 0)
    assert [i["name"] for i in sig["inputs"]] == input_names(spec, kv) + (["logits_to_keep"] if fused else [])
    assert [o["name"] for o in sig["outputs"]] == output_names(spec, kv)
    shapes = {v["name"]: v["shape"] for v in sig["inputs"] + sig["outputs"]}
    assert shapes["input_ids"] == ["batch", "seq"]
    if kv:
        assert shapes["attention_mask"] == ["batch", "total_seq"]
        layer0 = spec.layer(0).attention
        assert shapes["past_key_values.0.key"] == ["batch", layer0.kv_heads, "past_seq", layer0.head_dim]
        assert shapes["logits"] == ["batch", "kept_seq" if fused else "seq", spec.vocab_size]
        assert shapes["present.0.value"][0] == "batch" and isinstance(shapes["present.0.value"][2], str)
    else:
        assert shapes["attention_mask"] == ["batch", "seq"]
        assert shapes["last_hidden_state"] == ["batch", "seq", spec.embed_dim]


@pytest.mark.parametrize("name", ["gpt2-tiny", "bert-tiny"])
def test_onnx_metadata_carries_spec_and_versions(builds, name):
    d = builds(name).directory
    model = onnx.load(str(d / "model.onnx"), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["blueprint.spec"] == (d / "spec.lock.yaml").read_text()
    for tool in ("blueprint", "torch", "onnx", "onnxruntime"):
        assert props[f"{tool}.version"]
    assert model.opset_import[0].version == 23
    # node metadata (stack traces with absolute paths) is stripped
    assert all(len(n.metadata_props) == 0 and not n.doc_string for n in model.graph.node)
