"""Packed weights of the fused export, as the quantizer needs them.

The fused graph packs q/k/v (and gate/up) as ``Transpose(Concat(W1, W2, ...))`` of parameters
that live in weights.safetensors; onnxruntime folds that when it loads the model, so the build
stores every weight once. The quantizer (``compiler.export.quantize``) only recognises a MatMul
whose weight is an initializer (after ``fold_weight_transposes``), so before quantizing the
Concats of initializers are materialised here as initializers of their own.
"""

from __future__ import annotations

import numpy as np


def is_fused(model) -> bool:
    """Whether an onnx_ir ``model`` is a fused export (it holds GroupQueryAttention)."""
    return any(n.op_type == "GroupQueryAttention" for n in model.graph)


def fold_packed_weights(model) -> int:
    """Replace every ``Concat`` of initializers by one concatenated initializer; returns how many."""
    import onnx_ir as ir

    count = 0
    for node in list(model.graph):
        if node.op_type != "Concat" or node.domain not in ("", "ai.onnx"):
            continue
        if not all(v is not None and v.is_initializer() and v.const_value is not None for v in node.inputs):
            continue
        axis = node.attributes.get_int("axis", 0)
        array = np.concatenate([v.const_value.numpy() for v in node.inputs], axis=axis)
        name = "+".join(v.name for v in node.inputs)
        value = ir.Value(name=name, shape=ir.Shape(array.shape), type=node.inputs[0].type,
                         const_value=ir.Tensor(array, name=name))
        model.graph.register_initializer(value)
        node.outputs[0].replace_all_uses_with(value)
        model.graph.remove(node, safe=True)
        count += 1
    for name, value in list(model.graph.initializers.items()):  # parameters only the packs read
        if not value.uses() and not value.is_graph_input() and not value.is_graph_output():
            model.graph.initializers.pop(name)
    return count
