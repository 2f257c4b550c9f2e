"""``--quant-method minmax``: block-wise min-max quantization with float offsets, run by
onnxruntime's fast integer-zero-point MatMulNBits kernel.

Each block of ``block`` weights along K (one output column n) is stored as
``w = d * q + lo`` with ``lo`` the block's minimum, ``d = (max - lo) / (2^bits - 1)`` and integer
levels ``q`` — the scheme of llama.cpp's Q4_1. The offset ``lo`` is a float, which MatMulNBits
can hold only as a float zero point, and that disables its prepacked kernel (measured 2.5 ms
against 0.035 ms for a 576x1536 int4 MatMul at batch 1, 70x). So the offset is split into an
integer zero point ``z = round(-lo / d)`` (clamped to the level range) that the fast kernel runs,
and a per-block remainder ``c = lo + d * z`` that it cannot::

    w = d * (q - z) + c          =>   x @ W = MatMulNBits(x) + (x @ E) @ C

where ``E`` [K, blocks] sums x over each block (0/1) and ``C`` [blocks, N] holds the remainders.
``x @ E`` is shared by the MatMuls reading the same input (q/k/v, gate/up). Two forms:

- ``minmax`` (default, ``fold``): ``C`` becomes extra rows of the same MatMulNBits, which reads
  ``[x, x @ E]`` (a Concat): one block sum (Reshape + ReduceSum where x's rank is known, else the
  0/1 MatMul) and one Concat per input instead of a remainder MatMul and an Add per weight (onnxruntime's per-node cost made those 40% of int4 decode on
  SmolLM2). The remainders are then rounded on their own 16-level grid (``quantize_folded``).
- ``minmax-exact``: ``(x @ E) @ C`` as an fp32 MatMul plus an Add: weights on a Q4_1 grid come
  back exactly. Also used where K is not a multiple of ``block``.

Why it matters here: weights that already lie on such a grid (a model imported from a Q4_1
GGUF, like SmolLM2 in this repo) are reproduced (exactly, or to within a fraction of a level),
while symmetric or integer-offset requantization moves every weight to a different grid
(docs/build-speed.md has the numbers).
"""

from __future__ import annotations

import numpy as np


def _levels(w: np.ndarray, bits: int, block: int):
    """``w`` [K, N] -> (levels q [N, blocks, block] uint8, steps d [N, blocks] f32, integer zero
    points z [N, blocks] uint8, remainders c [N, blocks] f32) with ``w = d * (q - z) + c``."""
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
    return q, scales, z.astype(np.uint8), remainder


def _pack(q: np.ndarray, z: np.ndarray, bits: int):
    """Levels [N, blocks, block] and zero points [N, blocks] in MatMulNBits' layout: (packed
    [N, blocks, block*bits/8] uint8, zero points uint8, two 4-bit blocks per byte per row)."""
    if bits != 4:
        return q, z.reshape(-1)
    blocks = q.shape[1]
    packed = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)  # [N, blocks, block/2], low nibble first
    zp = np.pad(z, ((0, 0), (0, blocks % 2)))  # [N, even blocks]
    return packed, (zp[:, 0::2] | (zp[:, 1::2] << 4)).astype(np.uint8).reshape(-1)


def quantize_weight(w: np.ndarray, bits: int, block: int):
    """``w`` [K, N] -> (packed [N, blocks, block*bits/8] uint8, scales [N*blocks] f32,
    zero points (uint8, onnxruntime's layout), remainders C [blocks, N] f32)."""
    q, scales, z, remainder = _levels(w, bits, block)
    packed, zp = _pack(q, z, bits)
    return packed, scales.reshape(-1), zp, np.ascontiguousarray(remainder.T)  # C: [blocks, N]


def quantize_folded(w: np.ndarray, bits: int, block: int):
    """``w`` [K, N] (K a multiple of ``block``) -> (packed, scales, zero points, K') of one
    MatMulNBits over ``[x, x @ E]`` (K' = K + blocks inputs): the main levels, then the remainders
    C [blocks, N] as extra rows, rounded on their own integer-zero-point grid, so the correction
    costs no node of its own. The rounding moves a weight by at most (max c - min c) / (2 * (2^bits - 1))
    over its column's group of up to ``block`` blocks (0 included); where every block of the group
    straddles 0 (|c| <= d / 2) that is at most the group's largest d / 30 at 4 bits."""
    k, n = w.shape
    q, scales, z, remainder = _levels(w, bits, block)  # remainder [N, blocks]
    blocks = q.shape[1]
    extra = -(-blocks // block)
    c = np.pad(remainder.astype(np.float64), ((0, 0), (0, extra * block - blocks))).reshape(n, extra, block)
    levels = 2 ** bits - 1
    lo, hi = np.minimum(c.min(-1), 0.0), np.maximum(c.max(-1), 0.0)  # the grid holds 0 (the padding) exactly
    d = (hi - lo) / levels
    d[d == 0] = 1.0
    zc = np.clip(np.round(-lo / d), 0, levels)  # [N, extra]
    qc = np.clip(np.round(c / d[..., None]) + zc[..., None], 0, levels).astype(np.uint8)
    packed, zp = _pack(np.concatenate([q, qc], 1), np.concatenate([z, zc.astype(np.uint8)], 1), bits)
    all_scales = np.concatenate([scales, d.astype(np.float32)], 1)  # [N, blocks + extra]
    return packed, all_scales.reshape(-1), zp, k + blocks


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


def apply(model, nodes: list[str], *, bits: int, block: int, accuracy_level: int, symmetric: bool = False,
          fold: bool = False) -> int:
    """Replace the named constant-weight MatMuls of the onnx_ir ``model`` (transposes folded) in
    place; returns how many. ``symmetric``: ``quantize_symmetric``'s grid, one MatMulNBits and no
    remainder correction. ``fold``: the remainders ride in the MatMulNBits itself
    (``quantize_folded``, where K is a multiple of ``block``) instead of an exact fp32 correction."""
    import onnx_ir as ir

    graph = model.graph
    by_name = {node.name: node for node in graph}
    sums: dict[tuple[ir.Value, int], ir.Value] = {}  # (input value, K) -> x @ E
    widened: dict[tuple[ir.Value, int], ir.Value] = {}  # (input value, K) -> [x, x @ E]
    indicators: dict[int, ir.Value] = {}
    ranks = value_ranks(graph)

    def constant(name: str, array: np.ndarray) -> ir.Value:
        value = ir.val(name, const_value=ir.tensor(array, name=name))  # shape and type from the array
        graph.register_initializer(value)
        return value

    def block_sums(x, k: int, name: str, new: list):
        """x @ E [..., blocks], once per input (q/k/v, gate/up share it). Where K is whole blocks
        and x's rank is known, as Reshape [..., blocks, block] + ReduceSum: measured 7.17 -> 6.62
        ms/token on SmolLM2's int4 default against the fp32 MatMul with E, which onnxruntime
        runs through its threaded GEMM (docs/build-speed.md, "int4 default")."""
        key = (x, k)
        if key in sums:
            return sums[key]
        rank = ranks.get(x)
        if k % block == 0 and rank is not None and rank >= 2:
            shape = constant(f"{name}_block_shape", np.array([0] * (rank - 1) + [k // block, block], dtype=np.int64))
            axes = constant(f"{name}_block_axes", np.array([-1], dtype=np.int64))
            split = ir.node("Reshape", [x, shape], name=f"{name}_blocks")  # [..., blocks, block]
            total = ir.node("ReduceSum", [split.outputs[0], axes], {"keepdims": 0},
                            name=f"{name}_block_sums")  # [..., blocks]
            sums[key] = total.outputs[0]
            new += [split, total]
            return sums[key]
        if k not in indicators:
            indicator = f"minmax_block_sum_{k}_{block}"
            if indicator in graph.initializers:  # an earlier call's, the same 0/1 matrix
                indicators[k] = graph.initializers[indicator]
            else:
                e = np.zeros((k, -(-k // block)), dtype=np.float32)  # [K, blocks]
                e[np.arange(k), np.arange(k) // block] = 1.0
                indicators[k] = constant(indicator, e)
        sum_node = ir.node("MatMul", [x, indicators[k]], name=f"{name}_block_sums")  # [..., blocks]
        sums[key] = sum_node.outputs[0]
        new.append(sum_node)
        return sums[key]

    for name in nodes:
        node = by_name[name]
        x, weight = node.inputs
        w = weight.const_value.numpy()  # [K, N]
        k, n = w.shape
        base = weight.name
        attrs = {"K": k, "N": n, "bits": bits, "block_size": block}
        if accuracy_level:
            attrs["accuracy_level"] = accuracy_level
        new: list = []
        if symmetric:
            packed, scales, zp = quantize_symmetric(w, bits, block)
        elif fold and k % block == 0:
            packed, scales, zp, attrs["K"] = quantize_folded(w, bits, block)
            key = (x, k)
            if key not in widened:
                concat = ir.node("Concat", [x, block_sums(x, k, name, new)], {"axis": -1},
                                 name=f"{name}_widened")  # [..., K + blocks]
                widened[key] = concat.outputs[0]
                new.append(concat)
            x = widened[key]
        else:
            packed, scales, zp, remainder = quantize_weight(w, bits, block)
        inputs = [x, constant(f"{base}_Q{bits}", packed), constant(f"{base}_scales", scales),
                  constant(f"{base}_zero_points", zp)]
        main = ir.node("MatMulNBits", inputs, attrs, domain="com.microsoft", name=f"{name}_Q{bits}")
        new.append(main)
        if symmetric or attrs["K"] != k:
            _replace(graph, node, weight, new, main)
            continue
        corr = ir.node("MatMul", [block_sums(x, k, name, new), constant(f"{base}_remainders", remainder)],
                       name=f"{name}_remainder")  # [..., N]
        add = ir.node("Add", [main.outputs[0], corr.outputs[0]], name=f"{name}_minmax")
        new += [corr, add]
        _replace(graph, node, weight, new, add)
    return len(nodes)


_SAME_RANK = {  # output 0 has the rank of input 0
    "Cast", "Neg", "Sigmoid", "Tanh", "Relu", "Erf", "Sqrt", "Exp", "Softmax", "QuickGelu", "FastGelu", "Gelu",
    "Slice", "Transpose", "Concat", "Identity", "Dropout", "LayerNormalization", "SimplifiedLayerNormalization",
    "RMSNormalization", "SkipLayerNormalization", "SkipSimplifiedLayerNormalization", "RotaryEmbedding",
    "GroupQueryAttention", "MatMulNBits", "CumSum"}
_BROADCAST = {"Add", "Sub", "Mul", "Div", "Pow", "Where", "Equal", "Or", "And", "Max", "Min", "Sum"}


def value_ranks(graph) -> dict:
    """Value -> rank wherever it follows from the graph's inputs, initializers and the ops
    blueprint's exports use. The exporters leave intermediate shapes unset, and onnx's shape
    inference does not know onnxruntime's contrib ops (GroupQueryAttention ...); a rank is all
    the block-sum Reshape needs. Values this cannot derive are absent."""
    ranks = {}
    for value in list(graph.inputs) + list(graph.initializers.values()):
        shape = value.const_value.shape if value.const_value is not None else value.shape
        if shape is not None:
            ranks[value] = len(shape)

    def const(value):
        return value.const_value.numpy() if value is not None and value.const_value is not None else None

    for node in graph:
        inputs = [ranks.get(v) if v is not None else None for v in node.inputs]
        op, rank = node.op_type, None
        if op in _SAME_RANK or op == "Split":
            rank = inputs[0] if inputs else None
        elif op in _BROADCAST and inputs and None not in inputs:
            rank = max(inputs)
        elif op == "MatMul" and None not in inputs:
            rank = max(inputs)
        elif op == "Gather" and None not in inputs[:2]:
            rank = inputs[0] - 1 + inputs[1]
        elif op == "Reshape" and const(node.inputs[1]) is not None:
            rank = len(const(node.inputs[1]))
        elif op in ("Unsqueeze", "Squeeze") and inputs[0] is not None and len(node.inputs) > 1 \
                and const(node.inputs[1]) is not None:
            rank = inputs[0] + (1 if op == "Unsqueeze" else -1) * len(const(node.inputs[1]))
        if rank is None:
            continue
        outputs = node.outputs if op == "Split" else node.outputs[:1]
        if op in ("SkipLayerNormalization", "SkipSimplifiedLayerNormalization") and len(node.outputs) > 3:
            outputs = [node.outputs[0], node.outputs[3]]  # the normed value and the residual sum
        for out in outputs:
            ranks[out] = rank
    return ranks


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
