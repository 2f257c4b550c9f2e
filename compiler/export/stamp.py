"""Staged export: export each distinct layer structure once, stamp it per layer.

Why: ``torch.onnx.export`` of a whole model costs about 3 s of tracing and decomposition per
layer, and every layer of a model with one block structure gives the same graph with other
weights. So the model is exported in pieces (docs/build-speed.md has the measurements):

- ``embed``: input_ids (+ position_ids, token_type_ids) -> x [b, s, D];
- one ``block`` per distinct layer structure (the layer's resolved ``BlockSpec``):
  x, attention_mask (, position_ids, past K, past V) -> x (, present K, present V);
- ``tail``: final norm and head: x, attention_mask -> the contract outputs.

Each piece is exported with its parameters lifted to graph inputs while onnxscript's optimizer
runs, so constant folding can never bake one layer's weights into a derived tensor (e.g. a
pre-transposed matrix) that the other layers would then share. The pieces are then stitched
with onnx_ir into one graph with the contract-4 inputs and outputs, each stamped copy taking its
own layer's parameters (named by their state-dict names, tied parameters once). The stitched
model computes exactly what the GraphModule does; the build's verification checks it.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import torch
from torch import nn

from compiler.export.io import BATCH, PAST, SEQ, TOTAL, Shape, input_names, make_inputs, output_names, symbolic_dims


class _Embed(nn.Module):
    def __init__(self, embed: nn.Module, names: list[str]):
        super().__init__()
        self.embed = embed  # same attribute name as in the GraphModule: same parameter names
        self.names = names

    def forward(self, *args):
        named = dict(zip(self.names, args))
        return self.embed(named["input_ids"], named.get("position_ids"), named.get("token_type_ids"))


class _Block(nn.Module):
    def __init__(self, block: nn.Module, kv_cache: bool, positions: bool):
        super().__init__()
        self.block, self.kv_cache, self.positions = block, kv_cache, positions

    def forward(self, *args):
        x, attention_mask, *rest = args
        positions = rest.pop(0) if self.positions else None
        if self.kv_cache:
            return self.block(x, attention_mask, positions, rest[0], rest[1])
        return (self.block(x, attention_mask, positions),)


class _Tail(nn.Module):
    def __init__(self, final_norm: nn.Module | None, head: nn.Module, decoder: bool):
        super().__init__()
        self.final_norm, self.head, self.decoder = final_norm, head, decoder

    def forward(self, *args):
        x, attention_mask = args
        if self.final_norm is not None:
            x = self.final_norm(x)
        out = self.head(x, attention_mask)
        return (out,) if self.decoder else (x, out)


def can_stage(module, spec) -> bool:
    """Staging rebuilds the forward pass from the components (Transformer.forward's wiring), so it
    applies only to a compiled GraphModule whose graph calls exactly those components in order:
    embeddings, each layer, the final norm, the head. Anything else exports whole."""
    from torch import fx

    if not isinstance(module, fx.GraphModule) or not hasattr(module, "embed") or not hasattr(module, "head"):
        return False
    calls = [n.target for n in module.graph.nodes if n.op == "call_module"]
    expected = ["embed", *(f"layers.{i}" for i in range(spec.num_layers))]
    expected += ["final_norm"] if hasattr(module, "final_norm") else []
    return calls == expected + ["head"]


def layer_groups(spec) -> list[list[int]]:
    """Layers grouped by identical resolved block spec, in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, block in enumerate(spec.resolved_layers()):
        groups.setdefault(block.model_dump_json(), []).append(i)
    return list(groups.values())


def _export_piece(module: nn.Module, args: tuple, names: list[str], outs: list[str], dynamic: tuple, opset: int):
    """Export ``module`` and optimize it with its parameters and buffers kept as inputs."""
    import onnxscript.optimizer

    from compiler.export.onnx_export import _quiet

    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    with warnings.catch_warnings(), torch.no_grad(), _quiet(loggers):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, args, dynamo=True, input_names=names, output_names=outs,
                                    dynamic_shapes=dynamic, opset_version=opset, optimize=False, verbose=False)
    model = program.model
    state = dict(module.named_parameters(remove_duplicate=False))
    state.update(dict(module.named_buffers(remove_duplicate=False)))
    lifted = {}
    graph = model.graph
    for name in list(graph.initializers):
        if name in state:
            value = graph.initializers.pop(name)
            lifted[name] = value.const_value
            value.const_value = None
            graph.inputs.append(value)
    with warnings.catch_warnings(), _quiet(loggers):
        warnings.simplefilter("ignore")
        onnxscript.optimizer.optimize(model)
    for name, tensor in lifted.items():
        value = next((v for v in graph.inputs if v.name == name), None)
        if value is None:
            continue  # unused after optimization
        graph.inputs.remove(value)
        value.const_value = tensor
        graph.register_initializer(value)
    return model


class _Stitcher:
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


def _dynamic(names: list[str]) -> tuple:
    from torch.export import Dim

    out = []
    for n in names:
        if n in ("x",):
            out.append({0: Dim.DYNAMIC, 1: Dim.DYNAMIC})
        elif n.startswith("past"):
            out.append({0: Dim.DYNAMIC, 2: Dim.DYNAMIC})
        else:
            out.append({0: Dim.DYNAMIC, 1: Dim.DYNAMIC})
    return (tuple(out),)  # one entry: the wrappers take *args, which torch.export sees as one tuple


def export_staged(module, spec, *, kv_cache: bool, opset: int, dtype: str, shape: Shape):
    """The staged export of ``module`` (the eval-mode GraphModule); returns an onnx_ir Model."""
    import onnx_ir as ir

    ins, outs = input_names(spec, kv_cache), output_names(spec, kv_cache)
    feeds = make_inputs(spec, shape, kv_cache=kv_cache, rng=np.random.default_rng(0), pad=[0, 2, 0], dtype=dtype)
    args = {n: torch.from_numpy(feeds[n]) for n in ins}
    float_dtype = next(module.parameters()).dtype
    positions = "position_ids" in ins
    stitch = _Stitcher(module)

    embed_names = [n for n in ins if n in ("input_ids", "position_ids", "token_type_ids")]
    embed = _export_piece(_Embed(module.embed, embed_names).eval(), tuple(args[n] for n in embed_names),
                          embed_names, ["x"], _dynamic(embed_names), opset)
    graph_inputs = {}
    for n in ins:
        names = symbolic_dims(n) if spec.is_decoder else {0: BATCH, 1: SEQ}  # encoders: mask is [b, s]
        dims = [names.get(a, d) for a, d in enumerate(args[n].shape)]
        elem = ir.DataType.INT64 if not args[n].is_floating_point() else ir.DataType.from_numpy(feeds[n].dtype)
        graph_inputs[n] = ir.Value(name=n, shape=ir.Shape(dims), type=ir.TensorType(elem))
    (x,) = stitch.stamp(embed, "embed/", [graph_inputs[n] for n in embed_names])

    x_example = torch.randn(shape.batch, shape.seq, spec.embed_dim, generator=torch.Generator().manual_seed(0)).to(float_dtype)
    block_names = ["x", "attention_mask"] + (["position_ids"] if positions else [])
    if kv_cache:
        block_names += ["past_key", "past_value"]
    block_outs = ["out", "present_key", "present_value"] if kv_cache else ["out"]
    pieces = {}
    for group in layer_groups(spec):
        first = group[0]
        block_args = [x_example, args["attention_mask"]] + ([args["position_ids"]] if positions else [])
        if kv_cache:
            block_args += [args[f"past_key_values.{first}.key"], args[f"past_key_values.{first}.value"]]
        wrapper = _Block(getattr(module.layers, str(first)), kv_cache, positions).eval()
        piece = _export_piece(wrapper, tuple(block_args), block_names, block_outs, _dynamic(block_names), opset)
        for i in group:
            pieces[i] = piece
    presents = {}
    for i in range(spec.num_layers):
        feeds_i = [x, graph_inputs["attention_mask"]] + ([graph_inputs["position_ids"]] if positions else [])
        if kv_cache:
            feeds_i += [graph_inputs[f"past_key_values.{i}.key"], graph_inputs[f"past_key_values.{i}.value"]]
        # the piece's parameters are named block.<name>; layer i's are layers.<i>.<name>
        results = stitch.stamp(pieces[i], f"layers.{i}/", feeds_i,
                               lambda name, i=i: f"layers.{i}." + name.removeprefix("block."))
        x = results[0]
        if kv_cache:
            presents[f"present.{i}.key"], presents[f"present.{i}.value"] = results[1], results[2]

    tail_module = _Tail(getattr(module, "final_norm", None), module.head, spec.is_decoder).eval()
    tail_outs = outs[:1] if spec.is_decoder else outs
    tail = _export_piece(tail_module, (x_example, args["attention_mask"]), ["x", "attention_mask"],
                         [f"out_{k}" for k in range(len(tail_outs))], _dynamic(["x", "attention_mask"]), opset)
    finals = stitch.stamp(tail, "tail/", [x, graph_inputs["attention_mask"]])
    named = dict(zip(tail_outs, finals))
    named.update(presents)

    graph_outputs = []
    for n in outs:
        value = named[n]
        if value.producer() is None or value in graph_outputs or value.is_graph_input():
            # an output must be produced by a node of its own
            copy = ir.Value(name=n)
            stitch.nodes.append(ir.Node("", "Identity", [value], outputs=[copy]))
            value = copy
        value.name = n
        value.shape = _output_shape(n, spec, float_dtype)
        value.type = ir.TensorType(_elem(float_dtype))
        graph_outputs.append(value)
    graph = ir.Graph(list(graph_inputs.values()), graph_outputs, nodes=stitch.nodes,
                     initializers=list(stitch.initializers.values()), opset_imports=dict(embed.opset_imports),
                     name="main_graph")
    graph.sort()
    return ir.Model(graph, ir_version=embed.ir_version, producer_name=embed.producer_name,
                    producer_version=embed.producer_version)


def _elem(dtype):
    import onnx_ir as ir

    return ir.DataType.FLOAT16 if dtype == torch.float16 else ir.DataType.FLOAT


def _output_shape(name: str, spec, dtype):
    import onnx_ir as ir

    if name == "logits" and spec.is_decoder:
        return ir.Shape([BATCH, SEQ, spec.vocab_size])
    if name.startswith("present."):
        i = int(name.split(".")[1])
        attn = spec.layer(i).attention
        return ir.Shape([BATCH, attn.kv_heads, TOTAL, attn.head_dim])
    if name == "last_hidden_state":
        return ir.Shape([BATCH, SEQ, spec.embed_dim])
    return None  # head-specific ([b, D] embeddings, [b, labels] classification, [b, s, V] MLM)
