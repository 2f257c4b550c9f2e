"""``--quant-method minmax-exact`` and mixed precision (``--keep-int8``, ``--keep-fp32``): structure
(which MatMuls become what) and numbers (onnxruntime's kernels against the fp32 graph running
the weights the quantized graph stores, unpacked independently of the packing code).

Tolerances: accuracy level 0 computes in fp32, so quantized vs "fp32 with the dequantized
weights" is 1e-4 (observed ~1e-6). llama-tiny's down_proj has K = 176, not a multiple of 32: the
padded last block is exercised.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx_ir as ir
import onnxruntime as ort
import pytest
import torch
from buildfixtures import (
    SPECS,
    assert_same_logits,
    load_tiny,
    quantizer_input,
    saved_session,
    unpack4,
)

from blueprint.errors import BlueprintError
from compiler.export import build as build_mod
from compiler.export import onnx_export, quant_minmax, quant_select, quantize
from compiler.export.build import default_compile
from compiler.export.io import Shape, make_inputs


@pytest.fixture(scope="module")
def tiny():
    spec = load_tiny("llama-tiny")
    torch.manual_seed(0)
    module = default_compile(spec, kv_cache=True).eval()
    model = onnx_export.export_model(module, spec, kv_cache=True)
    return spec, ir.serde.serialize_model(model)


def _copy(proto):
    return ir.serde.deserialize_model(proto)


@pytest.mark.parametrize("kind", ["int4", "int8"])
def test_minmax_exact_structure_and_kernel_against_dequantized_fp32(tiny, tmp_path, kind):
    spec, proto = tiny
    bits = 4 if kind == "int4" else 8
    plain = quantizer_input(proto)
    weights = quantize.weight_matmuls(plain)
    q = quantize.quantize_model(_copy(proto), quantize.QuantizeOptions(kind, method="minmax-exact", accuracy_level=0,
                                                                          keep_int8=(), head_rescore=0))
    ops = Counter(n.op_type for n in q.graph)
    nbits = [n for n in q.graph if n.op_type == "MatMulNBits"]
    assert len(nbits) == len(weights) == 7 * spec.num_layers + 1
    # one block-sum per distinct input (per layer: attention norm, attention out, ffn norm, ffn act; the
    # head's input) and one remainder MatMul per quantized weight, besides attention's own MatMuls
    sums = [n for n in q.graph if n.name.endswith("_block_sums")]
    assert len(sums) == 4 * spec.num_layers + 1
    matmul_sums = [n for n in sums if n.op_type == "MatMul"]  # the others are Reshape + ReduceSum
    assert ops["MatMul"] == Counter(n.op_type for n in plain.graph)["MatMul"] - len(weights) + len(matmul_sums) + len(nbits)
    assert all(len(n.inputs) == 4 and n.inputs[3].const_value.numpy().dtype == np.uint8 for n in nbits)
    assert not any(v.name in {w for w, _ in weights.values()} for v in q.graph.initializers.values())

    # unpack what each MatMulNBits + remainder computes and run it as a plain fp32 MatMul
    reference = quantizer_input(proto)
    by_name = {n.name: n for n in reference.graph}
    initializers = q.graph.initializers
    worst = 0.0
    for node in nbits:
        original = node.name.removesuffix(f"_Q{bits}")
        wname, w = weights[original]
        k, n, block = node.attributes["K"].value, node.attributes["N"].value, node.attributes["block_size"].value
        blocks = -(-k // block)
        assert node.attributes["bits"].value == bits
        zp = node.inputs[3].const_value.numpy().reshape(n, -1)
        if bits == 4:
            levels = unpack4(node.inputs[1].const_value.numpy(), n, blocks, block)
            zero = np.stack([zp & 0x0F, zp >> 4], -1).reshape(n, -1)[:, :blocks]  # [N, blocks]
        else:
            levels, zero = node.inputs[1].const_value.numpy().astype(np.int64), zp.astype(np.int64)
        scale = node.inputs[2].const_value.numpy().reshape(n, blocks)
        remainder = initializers[f"{wname}_remainders"].const_value.numpy()  # [blocks, N]
        deq = (levels - zero[..., None]) * scale[..., None] + remainder.T[..., None]  # [N, blocks, block]
        deq = deq.reshape(n, -1)[:, :k].T.astype(np.float32)  # [K, N]
        # min-max RTN: every weight within half a level of its block's step
        step = np.repeat(scale, block, axis=1)[:, :k].T  # [K, N]
        worst = max(worst, float((np.abs(deq - w) / step).max()))
        target = by_name[original]
        target.inputs[1].const_value = ir.Tensor(deq, name=target.inputs[1].name)
    assert 0.25 < worst <= 0.5 + 1e-3
    assert_same_logits(spec, q, reference, tmp_path)


def test_minmax_reproduces_weights_on_a_q4_1_grid_exactly():
    """A model imported from a Q4_1 GGUF holds w = d * q + m per block of 32: minmax stores it
    exactly (fp32 rounding), where symmetric RTN moves every weight."""
    rng = np.random.default_rng(1)
    k, n = 96, 40
    d = rng.uniform(1e-3, 1e-1, (k // 32, n))
    m = -rng.uniform(0, 1, (k // 32, n))
    q = rng.integers(0, 16, (k // 32, 32, n))
    q[:, 0], q[:, 1] = 0, 15  # Q4_1 maps a block's min to 0 and its max to 15
    w = (q * d[:, None] + m[:, None]).reshape(k, n).astype(np.float32)
    packed, scales, zp, remainder = quant_minmax.quantize_weight(w, 4, 32)
    back = quant_minmax.dequantize(packed, scales, zp, remainder, k, 4, 32)
    assert np.abs(back - w).max() <= 4 * np.finfo(np.float32).eps * np.abs(w).max()
    assert quant_select._relative_error(w, 4, 32, "sym") > 1e-2
    assert quant_select._relative_error(w, 4, 32, "minmax") < 1e-6


def test_mixed_precision_keeps_what_the_selectors_name(tiny, tmp_path):
    spec, proto = tiny
    options = quantize.QuantizeOptions("int4", method="rtn", accuracy_level=0, keep_int8=("head", "first"),
                                       keep_fp32=("down_proj",))
    q = quantize.quantize_model(_copy(proto), options)
    bits = {n.name.rsplit("_Q", 1)[0]: n.attributes["bits"].value for n in q.graph if n.op_type == "MatMulNBits"}
    weights = quantize.weight_matmuls(quantizer_input(proto))
    params = {node: quant_select.param_of(w) for node, (w, _) in weights.items()}
    kept = {node for node in weights if node not in bits}
    assert {params[node] for node in kept} == {f"layers.{i}.ffn.down_proj.weight" for i in range(spec.num_layers)}
    for node, b in bits.items():
        param = params[node]
        expected = 8 if param == "head.proj.weight" or param.startswith("layers.0.") else 4
        assert b == expected, param
    still = {n.inputs[1].name for n in q.graph if n.op_type == "MatMul" and n.inputs[1].is_initializer()}
    assert still == {weights[node][0] for node in kept}  # fp32 MatMuls read the original weights


def test_minmax_with_int8_keeps_and_fp32_keeps(tiny, tmp_path):
    spec, proto = tiny
    options = quantize.QuantizeOptions("int4", method="minmax-exact", accuracy_level=0, keep_int8=("head",),
                                       keep_fp32=("layer:-1",))
    q = quantize.quantize_model(_copy(proto), options)
    nbits = [n for n in q.graph if n.op_type == "MatMulNBits"]
    assert Counter(n.attributes["bits"].value for n in nbits) == {4: 7 * (spec.num_layers - 1), 8: 1}
    assert sum(n.name.endswith("_remainder") for n in q.graph) == 7 * (spec.num_layers - 1)
    # runs, and stays close to fp32 (the tiny random model's logits are O(1))
    a, b = saved_session(q, tmp_path / "q"), saved_session(quantizer_input(proto), tmp_path / "f")
    feeds = make_inputs(spec, Shape(2, 5, 0), kv_cache=True, rng=np.random.default_rng(0))
    assert np.abs(a.run(["logits"], feeds)[0] - b.run(["logits"], feeds)[0]).max() < 0.5


def test_worst_selector_ranks_by_measured_weight_error(tiny):
    spec, proto = tiny
    weights = quantize.weight_matmuls(quantizer_input(proto))
    chosen = quant_select.precisions(weights, kind="int4", keep_int8=("worst:0.2",), keep_fp32=(),
                                     num_layers=spec.num_layers, block=32, scheme="sym")
    count = round(0.2 * len(weights))
    errors = {node: quant_select._relative_error(w, 4, 32, "sym") for node, (_, w) in weights.items()}
    top = sorted(errors, key=errors.get, reverse=True)[:count]
    assert {node for node, p in chosen.items() if p == "int8"} == set(top)
    assert sum(p == "int4" for p in chosen.values()) == len(weights) - count


def test_top1_agreement_counts_matching_argmax_positions():
    class Fixed:
        def __init__(self, logits):
            self.logits = logits

        def run(self, names, feeds):
            assert feeds["input_ids"].shape == (1, 4)
            return [self.logits]

    spec = load_tiny("llama-tiny")
    a = np.zeros((1, 4, spec.vocab_size), dtype=np.float32)
    b = a.copy()
    a[0, np.arange(4), [3, 7, 9, 11]] = 1.0
    b[0, np.arange(4), [3, 7, 10, 11]] = 1.0
    assert quantize.top1_agreement(Fixed(a), Fixed(b), spec, [5, 6, 7, 8]) == 0.75
    assert quantize.top1_agreement(Fixed(a), Fixed(a), spec, [5, 6, 7, 8]) == 1.0


@pytest.mark.parametrize("options, message", [
    (quantize.QuantizeOptions("int4", method="gptq"), "must be one of rtn, minmax, minmax-exact, hqq"),
    (quantize.QuantizeOptions("int4", head_rescore=-1), "--head-rescore must be a whole number"),
    (quantize.QuantizeOptions("int4", method="minmax", symmetric=False), "applies to --quant-method rtn"),
    (quantize.QuantizeOptions("int8", keep_int8=("head",)), "only makes sense with --quantize int4"),
    (quantize.QuantizeOptions("int4", keep_int8=("worst:0",)), "fraction after 'worst:'"),
    (quantize.QuantizeOptions("int4", keep_fp32=("layer:x",)), "takes a layer index"),
    (quantize.QuantizeOptions("int4", keep_fp32=("down proj",)), "is not a selector"),
])
def test_bad_mixed_options_are_user_errors(tmp_path, options, message):
    with pytest.raises(BlueprintError, match=message):
        build_mod.build(SPECS / "llama-tiny.yaml", tmp_path / "out", quantize=options)
    assert not (tmp_path / "out").exists()


def test_cli_quantize_defaults_and_bad_selector(tmp_path, capsys):
    from blueprint import cli

    out = tmp_path / "q4"
    rc = cli.main(["build", str(SPECS / "llama-tiny.yaml"), "-o", str(out), "--no-verify", "--quantize", "int4",
                   "--min-agreement", "0", "-q"])
    assert rc == 0, capsys.readouterr().err
    import json

    manifest = json.loads((out / "manifest.json").read_text())
    entry = manifest["quantization"]
    # llama-tiny, 2 layers: the fused export packs q/k/v and gate/up (4 MatMuls a layer, + the head),
    # the plain export has 7 a layer
    assert manifest["export"] == "fused"
    assert entry["method"] == "minmax" and entry["keep_int8"] == [] and entry["matmuls"] == 2 * 4 + 1
    assert entry["head_rescore"] == 8
    rc = cli.main(["build", str(SPECS / "llama-tiny.yaml"), "-o", str(tmp_path / "bad"), "--quantize", "int4",
                   "--keep-fp32", "head,down proj"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err and "'down proj' is not a selector" in err
    assert not (tmp_path / "bad").exists()


def test_symmetric_int8_keeps_reproduce_a_q8_0_grid_exactly():
    """--keep-int8 under minmax: d = max|w| / 127 per block of 32, as llama.cpp's Q8_0, so weights
    already on that grid (a GGUF's Q8_0 embedding/head) come back bit for bit."""
    rng = np.random.default_rng(0)
    k, n, block = 96, 5, 32
    d = rng.uniform(1e-3, 1e-2, size=(n, k // block)).astype(np.float16).astype(np.float64)  # [N, blocks], fp16 as GGUF
    q = rng.integers(-127, 128, size=(n, k // block, block))
    q[:, :, 0] = 127 * np.sign(rng.standard_normal((n, k // block))).astype(int)  # each block reaches its max
    w = (q * d[..., None]).astype(np.float32).reshape(n, k).T  # [K, N]
    packed, scales, zp = quant_minmax.quantize_symmetric(w, 8, block)
    assert packed.dtype == np.uint8 and set(np.unique(zp)) == {128}
    back = (packed.astype(np.float32) - 128) * scales.reshape(n, -1)[..., None]  # [N, blocks, block]
    assert np.array_equal(back.reshape(n, k).T, w)


def test_symmetric_int8_levels_run_in_matmulnbits_as_unpacked(tmp_path):
    """onnxruntime's MatMulNBits reads quantize_symmetric's layout (levels offset by the zero point
    128) as the weights it unpacks to (fp32 activations: accuracy level 0)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    k, n, block = 80, 24, 32  # K not a multiple of the block: the last block is padded
    w = rng.standard_normal((k, n)).astype(np.float32)
    packed, scales, zp = quant_minmax.quantize_symmetric(w, 8, block)
    node = helper.make_node("MatMulNBits", ["x", "q", "s", "z"], ["y"], domain="com.microsoft", K=k, N=n, bits=8,
                            block_size=block)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, n])],
                              [numpy_helper.from_array(packed, "q"), numpy_helper.from_array(scales, "s"),
                               numpy_helper.from_array(zp, "z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = rng.standard_normal((3, k)).astype(np.float32)
    (y,) = session.run(None, {"x": x})
    blocks = packed.shape[1]
    deq = ((packed.astype(np.float64) - 128) * scales.reshape(n, blocks)[..., None]).reshape(n, -1)[:, :k].T  # [K, N]
    assert np.abs(y - x.astype(np.float64) @ deq).max() <= 1e-4
    assert np.abs(deq - w).max() <= scales.max() / 2 + 1e-7  # round to nearest level


@pytest.mark.parametrize("flags", [["--keep-int8", "head"], ["--head-rescore", "4"], ["--block-size", "32"],
                                   ["--quant-method", "rtn", "--min-agreement", "0.9"], ["--keep-checkpoint"]])
def test_cli_quantization_options_without_quantize_are_refused(tmp_path, capsys, flags):
    """A quantization option without --quantize would build fp32 and silently drop it."""
    from blueprint import cli

    rc = cli.main(["build", str(SPECS / "llama-tiny.yaml"), "-o", str(tmp_path / "out"), "-q"] + flags)
    err = capsys.readouterr().err
    named = [f for f in flags if f.startswith("--")]
    assert rc == 1 and "Traceback" not in err
    assert f"{', '.join(named)} only {'apply' if len(named) > 1 else 'applies'} with --quantize int4|int8" in err
    assert not (tmp_path / "out").exists()
