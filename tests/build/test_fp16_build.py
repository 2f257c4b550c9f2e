"""--dtype fp16: the build verifies against the fp32 torch graph holding the same fp16-rounded
weights, within the stated fp16 tolerance, and the runtime feeds an fp16 cache."""

from __future__ import annotations

import numpy as np
import onnx
from buildfixtures import SPECS
from safetensors import safe_open

from blueprint import runtime
from compiler.export.build import build
from compiler.export.verify import FP16_TOLERANCE


def test_fp16_build_verifies_and_generates(tmp_path):
    result = build(SPECS / "llama-tiny.yaml", tmp_path / "fp16", dtype="fp16")
    assert result.report.ok and result.report.tolerance == FP16_TOLERANCE
    worst = max(max(c.max_abs.values()) for c in result.report.cases)
    assert 0 < worst <= FP16_TOLERANCE  # > 0: fp16 really ran in fp16
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
