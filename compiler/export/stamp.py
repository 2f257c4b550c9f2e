"""Staged export: export each distinct layer structure once, stamp it per layer.

Why: ``torch.onnx.export`` of a whole model costs about 3 s of tracing and decomposition per
layer, and every layer of a model with one block structure gives the same graph with other
weights. So the model is exported in pieces (docs/build-speed.md has the measurements):

- ``embed``: input_ids (+ position_ids, token_type_ids) -> x [b, s, D];
- one ``block`` per distinct layer structure (the layer's resolved ``BlockSpec``):
  x, attention_mask (, position_ids, past K, past V) -> x (, present K, present V);
- ``tail``: final norm and head: x, attention_mask -> the contract outputs.

All pieces go through one ``torch.onnx.export`` call side by side (``_Pieces``) and the graph is
cut back into pieces by output cone (``stitch.split_pieces``). The export keeps parameters lifted to graph
inputs while onnxscript's optimizer runs, so constant folding can never bake one layer's weights
into a derived tensor (e.g. a pre-transposed matrix) that the other layers would then share. The pieces are then stitched
with onnx_ir into one graph with the contract-4 inputs and outputs, each stamped copy taking its
own layer's parameters (named by their state-dict names, tied parameters once). The stitched
model computes exactly what the GraphModule does; the build's verification checks it.

A fused export (``compiler.export.fuse``) emits its layers, and its embeddings and tail where
``fuse.ends`` covers them, into the same stitcher (``compiler.export.stitch``); only the pieces left (if any) are exported.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import torch
from torch import nn

from compiler.export.io import BATCH, SEQ, TOTAL, WINDOW, Shape, input_names, make_inputs, output_names, symbolic_dims
from compiler.export.stitch import Stitcher, split_pieces, unprefixed


class _Embed(nn.Module):
    def __init__(self, embed: nn.Module, names: list[str]):
        super().__init__()
        self.embed = embed  # same attribute name as in the GraphModule: same parameter names
        self.names = names

    def forward(self, *args):
        named = dict(zip(self.names, args))
        return (self.embed(named["input_ids"], named.get("position_ids"), named.get("token_type_ids")),)


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


class _Pieces(nn.Module):
    """Every piece side by side: one export call for all of them (each ``torch.onnx.export`` call
    pays ~0.7 s to rebuild the exporter's registry, plus tracing set-up). The pieces share no
    computation; ``stitch.split_pieces`` cuts the exported graph back into one graph per piece."""

    def __init__(self, parts: list[nn.Module], arity: list[int]):
        super().__init__()
        self.parts = nn.ModuleList(parts)
        self.arity = arity

    def forward(self, *args):
        out, k = [], 0
        for part, n in zip(self.parts, self.arity):
            out.extend(part(*args[k:k + n]))
            k += n
        return tuple(out)


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


def export_staged(module, spec, *, kv_cache: bool, opset: int, dtype: str, shape: Shape, fused: bool = False,
                  bounded: frozenset[int] = frozenset()):
    """The staged export of ``module`` (the eval-mode GraphModule); returns an onnx_ir Model.

    ``fused``: the layers are emitted as onnxruntime contrib ops (``compiler.export.fuse``; the
    caller checked ``fuse.why_not``) instead of stamped from the exported block, and the graph
    takes ``logits_to_keep`` (default 0: every position) to compute the head on the last
    positions only. ``bounded`` (fused only): layers whose cache is window-sized
    (``blueprint.window_cache``); their past and present have the capacity as length."""
    import onnx_ir as ir

    from compiler.export import fuse

    ins, outs = input_names(spec, kv_cache), output_names(spec, kv_cache)
    feeds = make_inputs(spec, shape, kv_cache=kv_cache, rng=np.random.default_rng(0), pad=[0, 2, 0], dtype=dtype)
    args = {n: torch.from_numpy(feeds[n]) for n in ins}
    float_dtype = next(module.parameters()).dtype
    positions = "position_ids" in ins
    stitch = Stitcher(module)

    embed_names = [n for n in ins if n in ("input_ids", "position_ids", "token_type_ids")]
    x_example = torch.randn(shape.batch, shape.seq, spec.embed_dim, generator=torch.Generator().manual_seed(0)).to(float_dtype)
    block_names = ["x", "attention_mask"] + (["position_ids"] if positions else [])
    if kv_cache:
        block_names += ["past_key", "past_value"]
    groups = [] if fused else layer_groups(spec)
    tail_outs = outs[:1] if spec.is_decoder else outs
    emitted = fuse.emitted_ends(spec, ins) if fused else set()
    # (module, example args, input names, number of outputs, names for _dynamic) per exported piece
    parts = {}
    if "embed" not in emitted:
        parts["embed"] = (_Embed(module.embed, embed_names), [args[n] for n in embed_names], embed_names, 1, embed_names)
    for g, group in enumerate(groups):
        first = group[0]
        block_args = [x_example, args["attention_mask"]] + ([args["position_ids"]] if positions else [])
        if kv_cache:
            block_args += [args[f"past_key_values.{first}.key"], args[f"past_key_values.{first}.value"]]
        parts[g] = (_Block(getattr(module.layers, str(first)), kv_cache, positions), block_args,
                    [f"b{g}_{n}" for n in block_names], 3 if kv_cache else 1, block_names)
    if "tail" not in emitted:
        parts["tail"] = (_Tail(getattr(module, "final_norm", None), module.head, spec.is_decoder),
                         [x_example, args["attention_mask"]], ["t_x", "t_attention_mask"], len(tail_outs),
                         ["x", "attention_mask"])
    pieces, header = _export_parts(parts, opset, fused=fused)

    graph_inputs = {}
    for n in ins:
        names = symbolic_dims(n, bounded) if spec.is_decoder else {0: BATCH, 1: SEQ}  # encoders: mask is [b, s]
        dims = [names.get(a, d) for a, d in enumerate(args[n].shape)]
        elem = ir.DataType.INT64 if not args[n].is_floating_point() else ir.DataType.from_numpy(feeds[n].dtype)
        graph_inputs[n] = ir.Value(name=n, shape=ir.Shape(dims), type=ir.TensorType(elem))
    if "embed" in emitted:
        x = fuse.emit_embed(stitch, spec, graph_inputs)
    else:
        (x,) = stitch.stamp(pieces["embed"], "embed/", [graph_inputs[n] for n in embed_names], unprefixed)

    presents = {}
    piece_of = {i: pieces[g] for g, group in enumerate(groups) for i in group}
    extra_inputs = []
    if fused:
        x, presents = fuse.emit_stack(stitch, spec, x, graph_inputs, bounded)
        keep = fuse.logits_to_keep_input()
        extra_inputs.append(keep)
        x = fuse.keep_last(stitch, x, keep)
    for i in ([] if fused else range(spec.num_layers)):
        feeds_i = [x, graph_inputs["attention_mask"]] + ([graph_inputs["position_ids"]] if positions else [])
        if kv_cache:
            feeds_i += [graph_inputs[f"past_key_values.{i}.key"], graph_inputs[f"past_key_values.{i}.value"]]
        # the piece's parameters are named parts.<g>.block.<name>; layer i's are layers.<i>.<name>
        results = stitch.stamp(piece_of[i], f"layers.{i}/", feeds_i,
                               lambda name, i=i: f"layers.{i}." + unprefixed(name).removeprefix("block."))
        x = results[0]
        if kv_cache:
            presents[f"present.{i}.key"], presents[f"present.{i}.value"] = results[1], results[2]

    if "tail" in emitted:
        finals = [fuse.emit_tail(stitch, spec, x)]
    else:
        finals = stitch.stamp(pieces["tail"], "tail/", [x, graph_inputs["attention_mask"]], unprefixed)
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
        value.shape = _output_shape(n, spec, float_dtype, bounded)
        if fused and n == "logits":  # [b, logits_to_keep or s, V]
            value.shape = ir.Shape([BATCH, "kept_seq", spec.vocab_size])
        value.type = ir.TensorType(_elem(float_dtype))
        graph_outputs.append(value)
    graph = ir.Graph(list(graph_inputs.values()) + extra_inputs, graph_outputs, nodes=stitch.nodes,
                     initializers=list(stitch.initializers.values()) + extra_inputs,
                     opset_imports=header.pop("opset_imports"), name="main_graph")
    graph.sort()
    return ir.Model(graph, **header)


def _export_parts(parts: dict, opset: int, *, fused: bool) -> tuple[dict, dict]:
    """Export every part in one ``torch.onnx.export`` call and cut the graph back into one
    piece per part (``stitch.split_pieces``); returns ({key: piece}, the Model's header: opset imports, IR
    version, producer). With no part to export (a fused build whose ends are emitted), the
    exporter is never imported: the header is blueprint's own, at ``opset``."""
    contrib = {"com.microsoft": 1} if fused else {}
    if not parts:
        import blueprint

        # IR version 10: what the exporter writes at these opsets, and onnxruntime-genai reads
        return {}, {"opset_imports": {"": opset, **contrib}, "ir_version": 10, "producer_name": "blueprint",
                    "producer_version": blueprint.__version__}
    values = list(parts.values())
    combined = _export_piece(_Pieces([p[0] for p in values], [len(p[1]) for p in values]).eval(),
                             # distinct tensors: torch.export aliases one tensor passed twice
                             tuple(a.clone() for p in values for a in p[1]), [n for p in values for n in p[2]],
                             [f"out_{k}" for k in range(sum(p[3] for p in values))],
                             _dynamic([n for p in values for n in p[4]]), opset)
    pieces = split_pieces(combined, [len(p[1]) for p in values], [p[3] for p in values])
    return dict(zip(parts, pieces)), {"opset_imports": dict(combined.opset_imports) | contrib,
                                      "ir_version": combined.ir_version, "producer_name": combined.producer_name,
                                      "producer_version": combined.producer_version}


def _elem(dtype):
    import onnx_ir as ir

    return ir.DataType.FLOAT16 if dtype == torch.float16 else ir.DataType.FLOAT


def _output_shape(name: str, spec, dtype, bounded: frozenset[int] = frozenset()):
    import onnx_ir as ir

    if name == "logits" and spec.is_decoder:
        return ir.Shape([BATCH, SEQ, spec.vocab_size])
    if name.startswith("present."):
        i = int(name.split(".")[1])
        attn = spec.layer(i).attention
        return ir.Shape([BATCH, attn.kv_heads, WINDOW if i in bounded else TOTAL, attn.head_dim])
    if name == "last_hidden_state":
        return ir.Shape([BATCH, SEQ, spec.embed_dim])
    return None  # head-specific ([b, D] embeddings, [b, labels] classification, [b, s, V] MLM)
