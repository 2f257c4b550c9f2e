"""Tracing: the lowered module tree -> torch.fx.GraphModule, the compiler's IR.

The tracer keeps embeddings, blocks, norms and heads as leaf modules, so ``gm.code`` reads as
the forward pass: one embedding call, one call per layer, the final norm, the head. Inputs
become placeholders named after the I/O contract's inputs (``compiler.signature``; '.' -> '_'),
in that order.

Every node gets namespaced metadata passes can select on (keys in ``compiler.graph_meta``):
``node.meta["blueprint.kind"]`` in {"input", "embed", "block", "final_norm", "head", "output"}
(plus "block_output" for the getitem nodes unpacking a cached layer's (x, K, V)), and
``node.meta["blueprint.layer"]`` = i for a layer's nodes.
"""

from __future__ import annotations

import operator

import torch
from torch import fx, nn

from compiler.components.block import Block
from compiler.components.embeddings import Embeddings
from compiler.components.heads import CausalLMHead, ClassificationHead, EmbeddingsHead, MaskedLMHead
from compiler.components.norms import LayerNorm, RMSNorm
from compiler.components.transformer import Transformer
from compiler.graph_meta import CHECKPOINTED, INPUT_NAMES, KIND, LAYER, OUTPUT_NAMES
from compiler.passes.checkpointing import checkpointed
from compiler.signature import placeholder_name

LEAVES = (Embeddings, Block, LayerNorm, RMSNorm, CausalLMHead, MaskedLMHead, EmbeddingsHead,
          ClassificationHead)
OUTPUT_TYPE = dict[str, torch.Tensor]  # Transformer.forward's return type


class BlueprintTracer(fx.Tracer):
    """An fx tracer whose leaves are blueprint's components and whose root takes the
    I/O contract's inputs as named placeholders (``Transformer.forward`` itself takes ``*inputs``).

    ``torch.load`` re-traces a saved GraphModule's generated code with a subclass of this
    tracer built without arguments: the code's own arguments are then the placeholders, calls
    to ``checkpointed`` stay calls (autowrapped, not inlined) and ``trace`` re-annotates the
    nodes, so a loaded graph has the same code and metadata as the saved one.
    """

    def __init__(self, input_names: list[str] | None = None):
        super().__init__(autowrap_functions=(checkpointed,))
        self.input_names = input_names

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, LEAVES) or super().is_leaf_module(m, module_qualified_name)

    def create_args_for_root(self, root_fn, is_module, concrete_args=None):
        if self.input_names is None:  # re-tracing generated code: its arguments are the inputs
            return super().create_args_for_root(root_fn, is_module, concrete_args)
        placeholders = [self.create_proxy("placeholder", placeholder_name(n), (), {})
                        for n in self.input_names]
        return root_fn, [self.root, *placeholders]

    def create_node(self, kind, target, args, kwargs, name=None, type_expr=None) -> fx.Node:
        if kind == "get_attr" and name is None and target.startswith("layers."):
            name = f"block_{target.split('.')[1]}"  # as the checkpointing pass names it
        return super().create_node(kind, target, args, kwargs, name, type_expr)

    def trace(self, root, concrete_args=None) -> fx.Graph:
        graph = super().trace(root, concrete_args)
        _annotate(graph)
        return graph


def _annotate(graph: fx.Graph) -> None:
    for node in graph.nodes:
        if node.op == "placeholder":
            node.meta[KIND] = "input"
        elif node.op == "output":
            node.meta[KIND] = "output"
            # a real type: ``from __future__ import annotations`` leaves a string here, which
            # torch.save cannot import
            node.type = OUTPUT_TYPE
        elif node.op == "call_module":
            parts = node.target.split(".")
            if parts[0] == "layers":
                node.meta[KIND], node.meta[LAYER] = "block", int(parts[1])
            else:
                node.meta[KIND] = parts[0]
        elif node.op == "get_attr" and node.target.startswith("layers."):
            _annotate_checkpointed(node)
        elif node.op == "call_function" and node.target is operator.getitem:
            source = node.args[0]
            if source.meta.get(KIND) == "block":
                i = source.meta[LAYER]
                node.meta[KIND], node.meta[LAYER] = "block_output", i
                # readable names in gm.code: the layer's hidden state and its K/V cache
                node._rename((f"hidden_{i}", f"present_{i}_key", f"present_{i}_value")[node.args[1]])


def _annotate_checkpointed(block: fx.Node) -> None:
    """A re-traced ``checkpointed(self.layers[i], ...)``: the names and metadata the
    checkpointing pass gave it (only a re-trace meets a layer as a ``get_attr``)."""
    i = int(block.target.split(".")[1])
    block.meta[KIND], block.meta[LAYER] = "block_module", i
    for call in block.users:
        call.meta[KIND], call.meta[LAYER] = "block", i
        call.meta[CHECKPOINTED] = True
        call.meta.pop("is_wrapped", None)  # the tracer autowraps it again; no wrap() line in code
        call._rename(f"layers_{i}")


def trace(model: Transformer) -> fx.GraphModule:
    """The GraphModule for ``model``; it shares ``model``'s parameters (tied ones stay tied)."""
    graph = BlueprintTracer(model.input_names).trace(model)
    gm = fx.GraphModule(model, graph, class_name=type(model).__name__)
    gm.meta[INPUT_NAMES] = list(model.input_names)
    gm.meta[OUTPUT_NAMES] = list(model.output_names)
    gm.graph.lint()
    return gm
