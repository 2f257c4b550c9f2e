"""``--head-rescore K``: a 4-bit LM head whose K best candidates are rescored exactly.

The LM head is the largest single MatMul of a small decoder (SmolLM2-135M: 28M of its 135M
weights, read once per generated token), and 4-bit rounding of it costs most of int4's agreement
with fp32 (docs/build-speed.md). Rescoring keeps the 4-bit head's bandwidth and gives back the
precision where generation looks:

    approx = MatMulNBits(h) (+ bias)          # [.., V]   4-bit head, every token
    top    = TopK(approx, K).indices          # [.., K]   its K best candidates
    exact  = Gather(W_rows, top) @ h (+ bias[top])   # [.., K]   the same rows in full precision
    logits = ScatterElements(Min(approx, min(exact)), top, exact)

``W_rows`` is the head weight as [V, H] rows. For a tied head it is the token embedding the
graph already holds for its input Gather, so rescoring adds no weights; an untied head keeps its
fp32 rows beside the 4-bit copy (read K rows per token, not the whole matrix). The logits
outside the K are the 4-bit head's own, capped at the lowest rescored candidate, so the argmax
is always one of the K and, whenever the exact best token is among them, it is the fp32 head's
(without the cap, candidates whose exact scores came out below their 4-bit ones could lose to a
token outside the K). A head bias is part of both scores (docs/architecture.md, "Quantized builds").
"""

from __future__ import annotations

import numpy as np


def apply(graph, out, h, rows, k: int, bias=None) -> None:
    """Rescore the head's output value ``out`` [.., V] of the onnx_ir ``graph`` in place: ``h``
    [.., H] is the head's input, ``rows`` an initializer holding the head weight as [V, H] in full
    precision, ``bias`` [V] (or None) the head bias that ``out`` already includes."""
    import onnx_ir as ir

    node = out.producer()
    node_name = node.name
    name = out.name
    users = list(out.uses())  # before the new nodes become users too
    outputs = [i for i, v in enumerate(graph.outputs) if v is out]
    out.name = f"{name}_approx"

    def const(suffix: str, array: np.ndarray) -> ir.Value:
        value = ir.val(f"{node_name}_rescore_{suffix}", const_value=ir.tensor(array, name=f"{node_name}_rescore_{suffix}"))
        graph.register_initializer(value)
        return value

    def op(op_type: str, inputs: list, suffix: str, **attributes):
        made = ir.node(op_type, inputs, attributes, num_outputs=2 if op_type == "TopK" else 1,
                       name=f"{node_name}_rescore_{suffix}")
        new.append(made)
        return made.outputs

    new: list = []
    last_axis = const("axis", np.array([-1], dtype=np.int64))
    top = op("TopK", [out, const("k", np.array([k], dtype=np.int64))], "topk", axis=-1, largest=1, sorted=0)[1]
    gathered = op("Gather", [rows, top], "rows", axis=0)[0]  # [.., K, H]
    column = op("Unsqueeze", [h, last_axis], "column")[0]  # [.., H, 1]
    dot = op("MatMul", [gathered, column], "dot")[0]  # [.., K, 1]
    exact = op("Squeeze", [dot, last_axis], "exact")[0]  # [.., K]
    if bias is not None:
        exact = op("Add", [exact, op("Gather", [bias, top], "bias", axis=0)[0]], "biased")[0]
    floor = op("ReduceMin", [exact, last_axis], "floor", keepdims=1)[0]  # [.., 1]
    capped = op("Min", [out, floor], "capped")[0]  # [.., V]: no token outside the K above them
    logits = op("ScatterElements", [capped, top, exact], "scatter", axis=-1)[0]  # [.., V]
    logits.name = name
    graph.insert_after(node, new)
    for user, index in users:
        user.replace_input_with(index, logits)
    for i in outputs:
        graph.outputs[i] = logits
