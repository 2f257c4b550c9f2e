"""Models over protobuf's 2 GB limit: ``save_model`` with the default threshold puts the weights
in ``model.onnx.data`` and onnxruntime runs the result.

The 2.25 GiB initializer is a zero-stride numpy view (no memory behind it); saving streams it to
disk (about 10 s, 2.3 GB of temporary disk) and onnxruntime maps it.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort

from compiler.export import onnx_export


def _gather_model(n: int) -> ir.Model:
    weight = ir.Value(name="weight", shape=ir.Shape([n]), type=ir.TensorType(ir.DataType.FLOAT),
                      const_value=ir.Tensor(np.broadcast_to(np.float32(0.5), (n,)), name="weight"))
    index = ir.Value(name="index", shape=ir.Shape([2]), type=ir.TensorType(ir.DataType.INT64))
    out = ir.Value(name="out", shape=ir.Shape([2]), type=ir.TensorType(ir.DataType.FLOAT))
    node = ir.Node("", "Gather", [weight, index], outputs=[out])
    graph = ir.Graph([index], [out], nodes=[node], initializers=[weight], opset_imports={"": 23})
    return ir.Model(graph, ir_version=10)


def test_a_model_over_2gb_goes_to_external_data_and_runs(tmp_path):
    n = 576 * 1024 * 1024  # 2.25 GiB of float32
    model = _gather_model(n)
    assert onnx_export.initializer_bytes(model) > 2**31 > onnx_export.EXTERNAL_DATA_THRESHOLD
    files = onnx_export.save_model(model, tmp_path, metadata={"blueprint.spec": "name: big\n"})
    assert files == ["model.onnx", onnx_export.DATA_FILE]
    assert (tmp_path / "model.onnx").stat().st_size < 4096
    assert (tmp_path / onnx_export.DATA_FILE).stat().st_size == 4 * n
    proto = onnx.load(str(tmp_path / "model.onnx"), load_external_data=False)
    assert {p.key: p.value for p in proto.metadata_props} == {"blueprint.spec": "name: big\n"}
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"index": np.array([0, n - 1], dtype=np.int64)})
    assert out.tolist() == [0.5, 0.5]


def test_a_small_model_stays_in_one_file(tmp_path):
    assert onnx_export.save_model(_gather_model(1024), tmp_path, metadata={}) == ["model.onnx"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
