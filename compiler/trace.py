"""Tracing: the lowered module tree -> torch.fx.GraphModule, the compiler's IR.

The tracer keeps embeddings, blocks, norms and heads as leaf modules, so ``gm.code`` reads as
the forward pass: one embedding call, one call per layer, the final norm, the head. Inputs
become placeholders named after the contract-4 inputs ('.' -> '_'), in contract order.

Every node gets namespaced metadata passes can select on:
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
from compiler.signature import placeholder_name

LEAVES = (Embeddings, Block, LayerNorm, RMSNorm, CausalLMHead, MaskedLMHead, EmbeddingsHead,
          ClassificationHead)
KIND, LAYER = "blueprint.kind", "blueprint.layer"


class BlueprintTracer(fx.Tracer):
    """An fx tracer whose leaves are blueprint's components and whose root takes the
    contract-4 inputs as named placeholders (``Transformer.forward`` itself takes ``*inputs``)."""

    def __init__(self, input_names: list[str]):
        super().__init__()
        self.input_names = input_names

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, LEAVES) or super().is_leaf_module(m, module_qualified_name)

    def create_args_for_root(self, root_fn, is_module, concrete_args=None):
        placeholders = [self.create_proxy("placeholder", placeholder_name(n), (), {})
                        for n in self.input_names]
        return root_fn, [self.root, *placeholders]


def _annotate(graph: fx.Graph) -> None:
    for node in graph.nodes:
        if node.op == "placeholder":
            node.meta[KIND] = "input"
        elif node.op == "output":
            node.meta[KIND] = "output"
        elif node.op == "call_module":
            parts = node.target.split(".")
            if parts[0] == "layers":
                node.meta[KIND], node.meta[LAYER] = "block", int(parts[1])
            else:
                node.meta[KIND] = parts[0]
        elif node.op == "call_function" and node.target is operator.getitem:
            source = node.args[0]
            if source.meta.get(KIND) == "block":
                i = source.meta[LAYER]
                node.meta[KIND], node.meta[LAYER] = "block_output", i
                # readable names in gm.code: the layer's hidden state and its K/V cache
                node._rename((f"hidden_{i}", f"present_{i}_key", f"present_{i}_value")[node.args[1]])


def trace(model: Transformer) -> fx.GraphModule:
    """The GraphModule for ``model``; it shares ``model``'s parameters (tied ones stay tied)."""
    tracer = BlueprintTracer(model.input_names)
    graph = tracer.trace(model)
    _annotate(graph)
    gm = fx.GraphModule(model, graph, class_name=type(model).__name__)
    gm.meta["blueprint.input_names"] = list(model.input_names)
    gm.meta["blueprint.output_names"] = list(model.output_names)
    gm.graph.lint()
    return gm
