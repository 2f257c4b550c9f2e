"""``--quant-method minmax``: block-wise min-max quantization with float offsets, run by
onnxruntime's fast integer-zero-point MatMulNBits kernel plus a small exact correction.

Each block of ``block`` weights along K (one output column n) is stored as
``w = d * q + lo`` with ``lo`` the block's minimum, ``d = (max - lo) / (2^bits - 1)`` and integer
levels ``q`` — the scheme of llama.cpp's Q4_1. The offset ``lo`` is a float, which MatMulNBits
can hold only as a float zero point, and that disables its prepacked kernel (measured 2.5 ms
against 0.035 ms for a 576x1536 int4 MatMul at batch 1, 70x). So the offset is split into an
integer zero point ``z = round(-lo / d)`` (clamped to the level range) that the fast kernel runs,
and a per-block remainder ``c = lo + d * z`` that it cannot::

    w = d * (q - z) + c          =>   x @ W = MatMulNBits(x) + (x @ E) @ C

where ``E`` [K, blocks] sums x over each block (0/1) and ``C`` [blocks, N] holds the remainders.
The correction is two small fp32 MatMuls (1/block of the weight's size); ``x @ E`` is shared by
the MatMuls reading the same input (q/k/v, gate/up).

Why it matters here: weights that already lie on such a grid (a model imported from a Q4_1
GGUF, like SmolLM2 in this repo) are reproduced exactly, while symmetric or integer-offset
requantization moves every weight to a different grid (docs/build-speed.md has the numbers).
"""

from __future__ import annotations

import numpy as np


def quantize_weight(w: np.ndarray, bits: int, block: int):
    """``w`` [K, N] -> (packed [N, blocks, block*bits/8] uint8, scales [N*blocks] f32,
    zero points (uint8, onnxruntime's layout), remainders C [blocks, N] f32)."""
    k, n = w.shape
    levels = 2 ** bits - 1
    pad = (-k) % block
    blocks = (k + pad) // block
    x = np.pad(w.astype(np.float64), ((0, pad), (0, 0))).T.reshape(n, blocks, block)  # [N, blocks, block]
    lo = x.min(-1)  # [N, blocks]
    d = (x.max(-1) - lo) / levels
    d[d == 0] = 1.0  # a constant block: every q is 0 and the remainder carries the value
    q = np.clip(np.round((x - lo[..., None]) / d[..., None]), 0, levels).astype(np.uint8)  # [N, blocks, block]
    z = np.clip(np.round(-lo / d), 0, levels)  # [N, blocks]
    scales = d.astype(np.float32)
    remainder = (lo + scales.astype(np.float64) * z).astype(np.float32)  # w = d * (q - z) + c
    z = z.astype(np.uint8)
    if bits == 4:
        packed = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)  # [N, blocks, block/2], low nibble first
        zp = np.pad(z, ((0, 0), (0, blocks % 2)))  # [N, even blocks]
        zp = (zp[:, 0::2] | (zp[:, 1::2] << 4)).astype(np.uint8).reshape(-1)  # two blocks per byte, per row
    else:
        packed, zp = q, z.reshape(-1)
    return packed, scales.reshape(-1), zp, np.ascontiguousarray(remainder.T)  # C: [blocks, N]


def quantize_symmetric(w: np.ndarray, bits: int, block: int):
    """``w`` [K, N] -> (packed [N, blocks, block] uint8, scales [N*blocks] f32, zero points): each
    block as ``d * q`` with ``d = max|w| / (2^(bits-1) - 1)`` and ``|q| <= 2^(bits-1) - 1``, stored
    offset by the constant zero point ``2^(bits-1)`` — llama.cpp's Q8_0 grid for 8 bits, so weights
    already on it (SmolLM2's embedding/head) are reproduced exactly, where onnxruntime's symmetric
    quantizer (its largest weight at level -128) moves them. 8 bits only: the int8 keeps of the
    minmax default (``--keep-int8``), which need no remainder correction."""
    if bits != 8:
        raise ValueError("quantize_symmetric packs 8-bit levels only")
    k, n = w.shape
    half = 2 ** (bits - 1)
    pad = (-k) % block
    blocks = (k + pad) // block
    x = np.pad(w.astype(np.float64), ((0, pad), (0, 0))).T.reshape(n, blocks, block)  # [N, blocks, block]
    d = np.abs(x).max(-1) / (half - 1)  # [N, blocks]
    d[d == 0] = 1.0  # an all-zero block: every level 0
    q = np.clip(np.round(x / d[..., None]), 1 - half, half - 1).astype(np.int16) + half  # [N, blocks, block]
    zp = np.full(n * blocks, half, dtype=np.uint8)
    return q.astype(np.uint8), d.astype(np.float32).reshape(-1), zp


def dequantize(packed, scales, zp, remainder, k: int, bits: int, block: int) -> np.ndarray:
    """The [K, N] weight ``quantize_weight``'s outputs compute with (for tests and reports)."""
    n, blocks = packed.shape[0], packed.shape[1]
    if bits == 4:
        q = np.stack([packed & 15, packed >> 4], -1).reshape(n, blocks, block)  # [N, blocks, block]
        z = np.stack([zp.reshape(n, -1) & 15, zp.reshape(n, -1) >> 4], -1).reshape(n, -1)[:, :blocks]
    else:
        q, z = packed, zp.reshape(n, blocks)
    s = scales.reshape(n, blocks)
    w = (q.astype(np.float32) - z[..., None]) * s[..., None] + remainder.T[..., None]  # [N, blocks, block]
    return w.reshape(n, -1)[:, :k].T


def apply(model, nodes: list[str], *, bits: int, block: int, accuracy_level: int, symmetric: bool = False) -> int:
    """Replace the named constant-weight MatMuls of the onnx_ir ``model`` (transposes folded) in
    place; returns how many. ``symmetric``: ``quantize_symmetric``'s grid, one MatMulNBits and no
    remainder correction."""
    import onnx_ir as ir

    graph = model.graph
    by_name = {node.name: node for node in graph}
    sums: dict[tuple[str, int], ir.Value] = {}  # (input value, K) -> x @ E
    indicators: dict[int, ir.Value] = {}

    def constant(name: str, array: np.ndarray) -> ir.Value:
        value = ir.Value(name=name, shape=ir.Shape(array.shape), type=ir.TensorType(ir.DataType.from_numpy(array.dtype)),
                         const_value=ir.Tensor(array, name=name))
        graph.register_initializer(value)
        return value

    for name in nodes:
        node = by_name[name]
        x, weight = node.inputs
        w = weight.const_value.numpy()  # [K, N]
        k, n = w.shape
        if symmetric:
            packed, scales, zp = quantize_symmetric(w, bits, block)
        else:
            packed, scales, zp, remainder = quantize_weight(w, bits, block)
        base = weight.name
        inputs = [x, constant(f"{base}_Q{bits}", packed), constant(f"{base}_scales", scales),
                  constant(f"{base}_zero_points", zp)]
        attrs = {"K": k, "N": n, "bits": bits, "block_size": block}
        if accuracy_level:
            attrs["accuracy_level"] = accuracy_level
        main = ir.node("MatMulNBits", inputs, attrs, domain="com.microsoft", name=f"{name}_Q{bits}")
        if symmetric:
            _replace(graph, node, weight, [main], main)
            continue
        if k not in indicators:
            e = np.zeros((k, remainder.shape[0]), dtype=np.float32)  # [K, blocks]
            e[np.arange(k), np.arange(k) // block] = 1.0
            indicators[k] = constant(f"minmax_block_sum_{k}_{block}", e)
        key = (x.name, k)
        new = [main]
        if key not in sums:
            sum_node = ir.node("MatMul", [x, indicators[k]], name=f"{name}_block_sums")  # [..., blocks]
            sums[key] = sum_node.outputs[0]
            new.append(sum_node)
        corr = ir.node("MatMul", [sums[key], constant(f"{base}_remainders", remainder)],
                       name=f"{name}_remainder")  # [..., N]
        add = ir.node("Add", [main.outputs[0], corr.outputs[0]], name=f"{name}_minmax")
        new += [corr, add]
        _replace(graph, node, weight, new, add)
    return len(nodes)


def _replace(graph, node, weight, new: list, last) -> None:
    """Put ``new`` where ``node`` was, ``last``'s output taking over its output and name."""
    graph.insert_before(node, new)
    out = node.outputs[0]
    name_ = out.name
    out.name = f"{name_}_unquantized"
    last.outputs[0].name = name_  # graph outputs (logits) keep their contract names
    out.replace_all_uses_with(last.outputs[0], replace_graph_outputs=True)
    graph.remove(node, safe=True)
    if not weight.uses():
        graph.initializers.pop(weight.name, None)
