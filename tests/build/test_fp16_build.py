"""--dtype fp16: onnxruntime fp16 and torch fp16 are both measured against the float64 graph
holding the same fp16-rounded weights; the build passes within the gate's rule, and the runtime
feeds an fp16 cache."""

from __future__ import annotations

import numpy as np
import onnx
from buildfixtures import SPECS
from safetensors import safe_open

from blueprint import runtime
from compiler.export.build import build
from compiler.export import verify as verify_mod


def test_fp16_build_verifies_and_generates(tmp_path):
    result = build(SPECS / "llama-tiny.yaml", tmp_path / "fp16", dtype="fp16")
    assert result.report.ok and result.report.dtype == "fp16", result.report.format()
    errors = [e for c in result.report.cases for e in c.errors.values()]
    # fp16 really ran in fp16 in both engines: errors of fp16 size, far above fp32's ~1e-7
    assert max(e.torch for e in errors) > 1e-4 and max(e.ort for e in errors) > 1e-4
    assert max(e.ort for e in errors) < 5e-2
    d = result.directory
    model = onnx.load(str(d / "model.onnx"), load_external_data=False)
    types = {v.name: v.type.tensor_type.elem_type for v in list(model.graph.input) + list(model.graph.output)}
    assert types["past_key_values.0.key"] == onnx.TensorProto.FLOAT16
    assert types["logits"] == onnx.TensorProto.FLOAT16
    with safe_open(str(d / "weights.safetensors"), "np") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {np.dtype("float16")}
    decoder = runtime.load(d)
    out = decoder.generate([1, 5, 9], max_new_tokens=12, stop_ids=[])
    assert len(out.ids) == 12 and max(out.ids) < 250
    assert result.manifest["dtype"] == "fp16"
    assert decoder.spec.dtype == "float16"  # --dtype overrides the spec's float32, and the lock says so
