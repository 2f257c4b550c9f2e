"""``--quantize``: structure (every constant-weight MatMul becomes MatMulNBits, nothing else
changes) and numbers (onnxruntime's MatMulNBits kernel against the fp32 graph running the
dequantized weights, unpacked here from the quantized model's own B / scales / zero points).

Tolerances: accuracy level 0 computes in fp32, so the quantized graph matches the fp32 graph with
dequantized weights to 1e-4 (observed ~1e-6); every dequantized int8 RTN weight lies within one
quantization step of the original (round-to-nearest, the range's far end clamped).
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import onnx_ir as ir
import onnxruntime as ort
import pytest
import torch
from buildfixtures import SPECS, load_tiny

from blueprint.errors import BlueprintError
from compiler.export import build as build_mod
from compiler.export import onnx_export, quantize
from compiler.export.build import default_compile
from compiler.export.io import Shape, make_inputs


def _fp32_model(spec):
    torch.manual_seed(0)
    module = default_compile(spec, kv_cache=True).eval()
    return onnx_export.export_model(module, spec, kv_cache=True)


def _dequantize(node, graph) -> np.ndarray:
    """The [K, N] float weight a MatMulNBits node computes with (8 bits)."""
    attrs = {a.name: a.value for a in node.attributes.values()}
    assert attrs["bits"] == 8
    k, n, block = attrs["K"], attrs["N"], attrs["block_size"]
    packed = node.inputs[1].const_value.numpy()  # [N, blocks, block] uint8
    scales = node.inputs[2].const_value.numpy().reshape(n, -1)  # [N, blocks]
    zero = 128.0
    if len(node.inputs) > 3 and node.inputs[3] is not None:
        zero = node.inputs[3].const_value.numpy().reshape(n, -1)[..., None].astype(np.float32)
    w = (packed.reshape(n, -1, block).astype(np.float32) - zero) * scales[..., None]  # [N, blocks, block]
    return w.reshape(n, -1)[:, :k].T  # [K, N]


def test_int8_structure_and_kernel_against_dequantized_fp32(tmp_path):
    spec = load_tiny("llama-tiny")
    fp32 = _fp32_model(spec)
    plain = ir.serde.deserialize_model(ir.serde.serialize_model(fp32))
    for value in plain.graph.initializers.values():
        value.const_value = ir.Tensor(value.const_value.numpy(), name=value.name)
    quantize.fold_weight_transposes(plain)
    before = Counter(n.op_type for n in plain.graph)
    weights_before = {n.name: n.inputs[1].const_value.numpy() for n in plain.graph
                      if n.op_type == "MatMul" and n.inputs[1].is_initializer()}
    options = quantize.QuantizeOptions("int8", block_size=32, accuracy_level=0, head_rescore=0)
    q = quantize.quantize_model(_fp32_model(spec), options)
    after = Counter(n.op_type for n in q.graph)
    # per layer: q, k, v, o, gate, up, down; plus the LM head
    assert after["MatMulNBits"] == 7 * spec.num_layers + 1 == len(weights_before)
    assert after["MatMul"] == before["MatMul"] - after["MatMulNBits"]  # attention's activations x activations stay
    assert {k: v for k, v in after.items() if k not in ("MatMul", "MatMulNBits")} == \
        {k: v for k, v in before.items() if k != "MatMul"}

    # the fp32 graph with the dequantized weights, against the MatMulNBits graph
    deq = ir.serde.deserialize_model(ir.serde.serialize_model(plain))
    by_name = {n.name: n for n in deq.graph}
    worst_step = 0.0
    for node in q.graph:
        if node.op_type != "MatMulNBits":
            continue
        w = _dequantize(node, q.graph)
        original = weights_before[node.name.removesuffix("_Q8")]
        n = w.shape[1]
        scales = np.abs(node.inputs[2].const_value.numpy()).reshape(n, -1)  # [N, blocks]
        block = node.attributes["block_size"].value
        err = np.zeros((n, scales.shape[1] * block), dtype=np.float32)  # [N, K padded]
        err[:, :w.shape[0]] = np.abs(w - original).T
        worst_step = max(worst_step, float((err.reshape(n, -1, block) / scales[..., None]).max()))
        target = by_name[node.name.removesuffix("_Q8")]
        target.inputs[1].const_value = ir.Tensor(w.astype(np.float32), name=target.inputs[1].name)
    # symmetric RTN scales by the signed extreme (it maps to -128), so the opposite end of the range
    # is clamped at +127: within one step there, half a step elsewhere
    assert 0.25 < worst_step <= 1.0 + 1e-3
    (tmp_path / "q").mkdir()
    (tmp_path / "d").mkdir()
    onnx_export.save_model(q, tmp_path / "q", metadata={})
    onnx_export.save_model(deq, tmp_path / "d", metadata={})
    a = ort.InferenceSession(str(tmp_path / "q" / "model.onnx"), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(tmp_path / "d" / "model.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for shape, pad in [(Shape(3, 9, 0), [0, 4, 1]), (Shape(2, 1, 11), [0, 3])]:
        feeds = make_inputs(spec, shape, kv_cache=True, rng=rng, pad=pad)
        (la,), (lb,) = a.run(["logits"], feeds), b.run(["logits"], feeds)
        assert np.abs(la - lb).max() <= 1e-4


def test_build_reports_agreement_and_fails_below_the_threshold(tmp_path):
    result = build_mod.build(SPECS / "llama-tiny.yaml", tmp_path / "q8", verify=False,
                             quantize=quantize.QuantizeOptions("int8", min_agreement=0.9))
    manifest = json.loads((result.directory / "manifest.json").read_text())
    entry = manifest["quantization"]
    # 2 layers: q, k, v, o, gate, up, down each (15 with the head); the fused export packs q/k/v
    # and gate/up into one MatMul each (9 with the head)
    assert manifest["export"] == "fused"
    assert entry["kind"] == "int8" and entry["method"] == "rtn" and entry["matmuls"] == 9
    assert 0.9 <= entry["top1_agreement_vs_fp32"] <= 1.0
    with pytest.raises(BlueprintError, match="agrees with fp32 on"):
        build_mod.build(SPECS / "llama-tiny.yaml", tmp_path / "q4", verify=False,
                        quantize=quantize.QuantizeOptions("int4", min_agreement=1.0))
    assert not (tmp_path / "q4").exists()


@pytest.mark.parametrize("options, message", [
    (quantize.QuantizeOptions("int3"), "must be int4 or int8"),
    (quantize.QuantizeOptions("int4", block_size=48), "power of two"),
    (quantize.QuantizeOptions("int8", method="hqq"), "4 bits only"),
    (quantize.QuantizeOptions("int4", min_agreement=1.5), "within"),
])
def test_bad_quantize_options_are_user_errors(tmp_path, options, message):
    with pytest.raises(BlueprintError, match=message):
        build_mod.build(SPECS / "llama-tiny.yaml", tmp_path / "out", quantize=options)
    assert not (tmp_path / "out").exists()


def test_hqq_int4_replaces_every_weight_matmul():
    spec = load_tiny("llama-tiny")
    q = quantize.quantize_model(_fp32_model(spec), quantize.QuantizeOptions("int4", method="hqq", keep_int8=()))
    nodes = [n for n in q.graph if n.op_type == "MatMulNBits"]
    assert len(nodes) == 7 * spec.num_layers + 1
    assert all(n.attributes["bits"].value == 4 and n.attributes["block_size"].value == 32 for n in nodes)
    assert all(len(n.inputs) > 3 and n.inputs[3] is not None for n in nodes)  # fitted zero points
