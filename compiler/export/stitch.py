"""Stitching for the staged export (``compiler.export.stamp``), at the onnx_ir level.

``split_pieces`` cuts the one combined ``torch.onnx.export`` of all pieces back into one graph
per piece (its inputs, outputs and the nodes its outputs depend on); ``Stitcher`` copies piece
graphs into the whole model, each stamped copy reading its own layer's parameters (named by
their state-dict names, tied parameters once). The fused export (``compiler.export.fuse``)
emits its nodes into the same ``Stitcher``.
"""

from __future__ import annotations

import re

from torch import nn


class Stitcher:
    """Builds the whole-model graph from piece graphs (onnx_ir)."""

    def __init__(self, module: nn.Module):
        import onnx_ir as ir

        self.ir = ir
        self.nodes: list = []
        self.inputs: dict[str, object] = {}
        self.initializers: dict[str, object] = {}
        # tied parameters: every name of one tensor maps to the first name
        self.canonical: dict[str, str] = {}
        by_tensor: dict[tuple, str] = {}
        tensors = dict(module.named_parameters(remove_duplicate=False))
        tensors.update(dict(module.named_buffers(remove_duplicate=False)))
        for name, t in tensors.items():
            key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
            self.canonical[name] = by_tensor.setdefault(key, name)
        self.tensors = tensors

    def initializer(self, name: str, like):
        ir = self.ir
        name = self.canonical.get(name, name)
        if name not in self.initializers:
            if name in self.tensors:
                tensor = ir.Tensor(self.tensors[name].detach().contiguous().numpy(), name=name)
            else:  # an exporter constant (shape, axes, scalars): the piece's own value
                tensor = like.const_value
            value = ir.Value(name=name, shape=tensor.shape, type=ir.TensorType(tensor.dtype), const_value=tensor)
            self.initializers[name] = value
        return self.initializers[name]

    def stamp(self, piece, prefix: str, feeds: list, weight_name=lambda name: name) -> list:
        """Copy ``piece``'s nodes into the model; its inputs read ``feeds`` (in order; the
        exporter may rename an input that is also an output), its
        parameter ``name`` is the model's ``weight_name(name)``; its other initializers (the
        exporter's constants) are its own, under ``prefix``. Returns its output values."""
        graph = piece.graph.clone()
        if len(graph.inputs) != len(feeds):
            raise AssertionError(f"piece {prefix} takes {len(graph.inputs)} inputs, given {len(feeds)}")
        for value, feed in zip(list(graph.inputs), feeds):
            value.replace_all_uses_with(feed)
        for name, value in list(graph.initializers.items()):
            full = weight_name(name)
            value.replace_all_uses_with(self.initializer(full if full in self.tensors else prefix + name, value))
        outputs = list(graph.outputs)
        graph.outputs.clear()
        nodes = list(graph)
        graph.remove(nodes)
        for node in nodes:
            node.name = f"{prefix}{node.name}"
            for value in node.outputs:
                value.name = f"{prefix}{value.name}"
                value.shape = None  # symbolic names differ between pieces; onnxruntime infers
        self.nodes.extend(nodes)
        return outputs


def unprefixed(name: str) -> str:
    """A combined export's parameter name without its ``parts.<k>.`` (tied parameters are
    named after the first part that holds them)."""
    return re.sub(r"^parts\.\d+\.", "", name)


class Piece:
    def __init__(self, graph):
        self.graph = graph


def split_pieces(model, in_arity: list[int], out_arity: list[int]) -> list[Piece]:
    """One graph per piece from the combined export: piece k's inputs and outputs, and the nodes
    its outputs depend on (each piece's own copy of the exporter's shared constants)."""
    pieces, i0, o0 = [], 0, 0
    for n_in, n_out in zip(in_arity, out_arity):
        graph = model.graph.clone()
        inputs = list(graph.inputs)[i0:i0 + n_in]
        outputs = list(graph.outputs)[o0:o0 + n_out]
        keep, stack = set(), [v.producer() for v in outputs if v.producer() is not None]
        while stack:
            node = stack.pop()
            if node in keep:
                continue
            keep.add(node)
            stack.extend(v.producer() for v in node.inputs if v is not None and v.producer() is not None)
        read = {v for node in keep for v in node.inputs if v is not None} | set(outputs)
        foreign = [v.name for v in graph.inputs if v not in inputs and v in read]
        if foreign:
            raise AssertionError(f"a staged piece reads another piece's inputs: {foreign}")
        graph.outputs.clear()
        graph.outputs.extend(outputs)
        graph.remove([node for node in graph if node not in keep], safe=False)
        graph.inputs.clear()
        graph.inputs.extend(inputs)
        for name, value in list(graph.initializers.items()):
            if value not in read:
                graph.initializers.pop(name)
        pieces.append(Piece(graph))
        i0, o0 = i0 + n_in, o0 + n_out
    return pieces
