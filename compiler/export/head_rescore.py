"""``--head-rescore K``: a 4-bit LM head whose K best candidates are rescored exactly.

The LM head is the largest single MatMul of a small decoder (SmolLM2-135M: 28M of its 135M
weights, read once per generated token), and 4-bit rounding of it costs most of int4's agreement
with fp32 (docs/build-speed.md). Rescoring keeps the 4-bit head's bandwidth and gives back the
precision where generation looks:

    approx = MatMulNBits(h)                   # [.., V]   4-bit head, every token
    top    = TopK(approx, K).indices          # [.., K]   its K best candidates
    exact  = Gather(W_rows, top) @ h          # [.., K]   the same rows in full precision
    logits = ScatterElements(approx, top, exact)

``W_rows`` is the head weight as [V, H] rows. For a tied head it is the token embedding the
graph already holds for its input Gather, so rescoring adds no weights; an untied head keeps its
fp32 rows beside the 4-bit copy (read K rows per token, not the whole matrix). Whenever the exact
best token is among the approximate K best, the argmax of ``logits`` is the fp32 head's; the
logits outside the K are the 4-bit head's own (docs/architecture.md, "Quantized builds").
"""

from __future__ import annotations

import numpy as np


def apply(graph, out, h, rows, k: int) -> None:
    """Rescore the head's output value ``out`` [.., V] (the 4-bit head's last node's output) of the
    onnx_ir ``graph`` in place: ``h`` [.., H] is the head's input, ``rows`` an initializer holding
    the head weight as [V, H] in full precision."""
    import onnx_ir as ir

    node = out.producer()
    node_name = node.name
    name = out.name
    users = list(out.uses())  # before the new nodes become users too
    outputs = [i for i, v in enumerate(graph.outputs) if v is out]
    out.name = f"{name}_approx"

    def const(suffix: str, array: np.ndarray) -> ir.Value:
        value = ir.Value(name=f"{node_name}_rescore_{suffix}", shape=ir.Shape(array.shape),
                         type=ir.TensorType(ir.DataType.from_numpy(array.dtype)),
                         const_value=ir.Tensor(array, name=f"{node_name}_rescore_{suffix}"))
        graph.register_initializer(value)
        return value

    topk = ir.node("TopK", [out, const("k", np.array([k], dtype=np.int64))], {"axis": -1, "largest": 1, "sorted": 0},
                   num_outputs=2, name=f"{node_name}_rescore_topk")
    top = topk.outputs[1]  # [.., K]
    gather = ir.node("Gather", [rows, top], {"axis": 0}, name=f"{node_name}_rescore_rows")  # [.., K, H]
    last_axis = const("axis", np.array([-1], dtype=np.int64))
    column = ir.node("Unsqueeze", [h, last_axis],
                     name=f"{node_name}_rescore_column")  # [.., H, 1]
    dot = ir.node("MatMul", [gather.outputs[0], column.outputs[0]], name=f"{node_name}_rescore_dot")  # [.., K, 1]
    exact = ir.node("Squeeze", [dot.outputs[0], last_axis],
                    name=f"{node_name}_rescore_exact")  # [.., K]
    scatter = ir.node("ScatterElements", [out, top, exact.outputs[0]], {"axis": -1},
                      name=f"{node_name}_rescore")  # [.., V]
    scatter.outputs[0].name = name
    graph.insert_after(node, [topk, gather, column, dot, exact, scatter])
    for user, index in users:
        user.replace_input_with(index, scatter.outputs[0])
    for i in outputs:
        graph.outputs[i] = scatter.outputs[0]
