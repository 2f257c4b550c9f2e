"""Lossless 8-bit tables: a float table read only by row Gathers, whose values already lie on an
8-bit block grid, becomes onnxruntime's ``GatherBlockQuantized`` over the same values at a
quarter of the bytes.

A model imported from a GGUF often stores its token embedding as llama.cpp's Q8_0 (blocks of
32 along the row, ``d * q`` with ``|q| <= 127`` and ``d`` an fp16 step): SmolLM2-135M's 113 MiB
fp32 embedding is such a table. ``on_grid`` finds that grid (the one
``quant_minmax.quantize_symmetric`` packs for --keep-int8), and the table is replaced only where
dequantizing its levels in float32, as the kernel does, gives back every value bit for bit: the
model computes the same numbers, and a table that is not on the grid (any trained fp32
checkpoint) keeps its float Gather. In a quantized build such tables are
the token embedding, a learned position table, and the head rescoring's candidate rows
(``head_rescore``: the embedding for a tied head, the head's own rows otherwise).

One difference from ONNX Gather: an index outside the table gives a row of zeros instead of an
error (GatherBlockQuantized does not check; onnxruntime-genai's int4 embedding behaves the same).
blueprint's runtime refuses such ids before they reach the model (``Decoder.check_prompt``,
``Decoder.forward``).
docs/architecture.md, "Quantized builds".
"""

from __future__ import annotations

import numpy as np

BITS = 8
BLOCK = 32  # Q8_0's block, whatever --block-size the MatMuls use
ZERO = 2 ** (BITS - 1)  # GatherBlockQuantized's default zero point for uint8 levels


def _row_gathers(value, rank: int) -> list | None:
    """The nodes reading ``value``, when every one is an ONNX Gather of rows (axis 0, or -rank) from it."""
    nodes = []
    for use in value.uses():
        node = use.node
        if node.op_type != "Gather" or node.domain not in ("", "ai.onnx") or use.idx != 0:
            return None
        axis = node.attributes.get("axis")
        if axis is not None and axis.value % rank != 0:
            return None
        nodes.append(node)
    return nodes or None


def on_grid(table: np.ndarray, block: int):
    """(levels [V, D] uint8, steps [V, D / block] f32) of ``table`` [V, D] on the symmetric
    8-bit grid (per block of a row: step ``max|x| / 127``, levels within +-127), or None unless
    ``(level - 128) * step`` in float32, the kernel's arithmetic, gives back every value's bits.
    Computed along the rows in float32 (no transposed or float64 copy of a 113 MiB table): how
    the levels are found does not matter, the bitwise check decides."""
    if table.ndim != 2 or table.dtype != np.float32 or table.shape[1] % block:
        return None
    if table.shape[0] > 256 and on_grid(table[:256], block) is None:  # a trained table fails at once
        return None
    rows, width = table.shape
    x = table.reshape(rows, width // block, block)
    steps = np.abs(x).max(-1)
    steps = (steps.astype(np.float64) / (ZERO - 1)).astype(np.float32)  # [V, blocks]
    steps[steps == 0] = 1.0  # an all-zero block: every level 0
    levels = np.divide(x, steps[..., None])  # [V, blocks, block] f32
    np.clip(np.rint(levels, out=levels), 1 - ZERO, ZERO - 1, out=levels)
    levels += ZERO  # the stored uint8 levels, as exact floats
    back = (levels - ZERO) * steps[..., None]  # the kernel's (q - zero point) * step: a level 0 is +0.0
    if not np.array_equal(back.view(np.uint32), x.view(np.uint32)):  # bit for bit: -0.0 is not 0.0
        return None
    return levels.astype(np.uint8).reshape(rows, width), steps


def compact_tables(model, block: int = BLOCK) -> list[str]:
    """Replace, in the onnx_ir ``model``, every float table read only by row Gathers and lying on
    the 8-bit grid; returns the tables replaced."""
    import onnx_ir as ir

    graph = model.graph
    done = []
    for name, value in list(graph.initializers.items()):
        tensor = value.const_value
        if tensor is None or len(tensor.shape) != 2 or value in graph.inputs or value in graph.outputs:
            continue
        gathers = _row_gathers(value, 2)
        if gathers is None:
            continue
        grid = on_grid(tensor.numpy(), block)
        if grid is None:
            continue
        stored = []
        for suffix, array in zip(("Q8", "steps"), grid):
            stored.append(ir.val(f"{name}_{suffix}", const_value=ir.tensor(array, name=f"{name}_{suffix}")))
            graph.register_initializer(stored[-1])
        for node in gathers:
            rows = ir.node("GatherBlockQuantized", [stored[0], node.inputs[1], stored[1]],
                           {"bits": BITS, "block_size": block, "gather_axis": 0, "quantize_axis": 1},
                           domain="com.microsoft", name=f"{node.name}_Q8")
            graph.insert_before(node, rows)
            out, kept_name = node.outputs[0], node.outputs[0].name
            out.replace_all_uses_with(rows.outputs[0], replace_graph_outputs=True)
            graph.remove(node, safe=True)
            rows.outputs[0].name = kept_name
        graph.initializers.pop(name)
        done.append(name)
    return done
