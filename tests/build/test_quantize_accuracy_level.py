"""Accuracy level 4 (the quantized builds' default): MatMulNBits with int8 activations.

The other quantization tests run at accuracy level 0 (fp32 activations), where the kernel must
reproduce the unpacked weights to 1e-4. At level 4 onnxruntime quantizes each block of
``block_size`` activations to int8 (symmetric, step ``max|a| / 127``) before the integer dot
products, so a correct kernel is off from the exact product ``x @ W`` by at most half a step per
activation:

    |y4[m, n] - (x @ W)[m, n]| <= sum_b  (max_{k in b} |x[m, k]| / 254) * sum_{k in b} |W[k, n]|

with ``W`` unpacked here from the node's own levels, scales and zero points (not with the
packing code). The bound is derived, not fitted: observed 20-45% of it. Every MatMulNBits of the
int4 default (folded offsets over ``[x, x @ E]``, the exact form where K is not whole blocks, the
4-bit head) and the int8 default is run on its own, on activations with an outlier channel.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import onnxruntime as ort
import pytest
import torch
from buildfixtures import SPECS, unpack4
from onnx import TensorProto, helper, numpy_helper

from compiler.export import build as build_mod
from compiler.export import quantize
from compiler.export.fuse import fold_packed_weights

ROWS = 5


@pytest.fixture(scope="module")
def fused_llama(tmp_path_factory):
    """llama-tiny's fused build as the quantizer reads it (packed weights materialised)."""
    out = tmp_path_factory.mktemp("level4") / "b"
    torch.manual_seed(0)
    build_mod.build(SPECS / "llama-tiny.yaml", out, verify=False)
    return str(out / "model.onnx")


def _quantized(path: str, kind: str):
    model = ir.load(path)
    for value in model.graph.initializers.values():
        value.const_value = ir.Tensor(value.const_value.numpy(), name=value.name)
    assert fold_packed_weights(model) > 0
    return quantize.quantize_model(model, quantize.QuantizeOptions(kind, head_rescore=0))


def _unpacked(node) -> np.ndarray:
    """The [K, N] weight a MatMulNBits node computes with (4 or 8 bits, zero points or their default)."""
    attrs = {name: a.value for name, a in node.attributes.items()}
    k, n, bits, block = attrs["K"], attrs["N"], attrs["bits"], attrs["block_size"]
    blocks = -(-k // block)
    packed = node.inputs[1].const_value.numpy()
    scales = node.inputs[2].const_value.numpy().reshape(n, blocks)
    stored = node.inputs[3].const_value.numpy() if len(node.inputs) > 3 and node.inputs[3] is not None else None
    if bits == 4:
        levels = unpack4(packed, n, blocks, block)
        zero = np.full((n, blocks), 8) if stored is None else \
            np.stack([stored.reshape(n, -1) & 0x0F, stored.reshape(n, -1) >> 4], -1).reshape(n, -1)[:, :blocks]
    else:
        levels = packed.reshape(n, blocks, block).astype(np.int64)
        zero = np.full((n, blocks), 128) if stored is None else stored.reshape(n, blocks)
    w = (levels - zero[..., None].astype(np.int64)) * scales[..., None].astype(np.float64)  # [N, blocks, block]
    return w.reshape(n, -1)[:, :k].T  # [K, N]


def _run_alone(node, x: np.ndarray) -> np.ndarray:
    """The node with its own initializers as a one-node model, at the accuracy level it carries."""
    attrs = {name: a.value for name, a in node.attributes.items()}
    names = ["w", "s", "z"][:len(node.inputs) - 1]
    inits = [numpy_helper.from_array(v.const_value.numpy(), n) for v, n in zip(node.inputs[1:], names)]
    k, n = attrs["K"], attrs["N"]
    graph = helper.make_graph(
        [helper.make_node("MatMulNBits", ["x", *names], ["y"], domain="com.microsoft", **attrs)], "one",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [ROWS, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [ROWS, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("kind", ["int4", "int8"])
def test_accuracy_level_4_stays_within_int8_activation_rounding(fused_llama, kind):
    q = _quantized(fused_llama, kind)
    nodes = [n for n in q.graph if n.op_type == "MatMulNBits"]
    assert nodes and all(n.attributes["accuracy_level"].value == 4 for n in nodes)
    if kind == "int4":  # both int4 forms are covered: folded (K' = K + blocks) and exact (down_proj, K = 176)
        assert any(n.attributes["K"].value == 66 for n in nodes) and any(n.attributes["K"].value == 176 for n in nodes)
    rng = np.random.default_rng(0)
    worst = 0.0
    for node in nodes:
        attrs = {name: a.value for name, a in node.attributes.items()}
        k, block = attrs["K"], attrs["block_size"]
        w = _unpacked(node)
        x = rng.standard_normal((ROWS, k)).astype(np.float32)
        x[:, 3] *= 20  # an outlier channel: its block's activation step is 20x the others'
        exact = x.astype(np.float64) @ w
        blocks = -(-k // block)
        steps = np.abs(np.pad(x, ((0, 0), (0, blocks * block - k)))).reshape(ROWS, blocks, block).max(-1) / 127
        weight_mass = np.abs(np.pad(w, ((0, blocks * block - k), (0, 0)))).reshape(blocks, block, -1).sum(1)
        bound = 0.5 * steps.astype(np.float64) @ weight_mass + 1e-5  # + fp32 accumulation
        error = np.abs(_run_alone(node, x) - exact)
        assert (error <= bound).all(), f"{node.name}: {(error / bound).max():.2f}x the int8 rounding bound"
        worst = max(worst, float((error / bound).max()))
    assert worst > 0.05  # the activations really were rounded to int8 (level 0 is ~1e-6 of the bound)
