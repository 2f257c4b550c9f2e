"""Activation checkpointing as a graph pass.

Each selected layer's call ``layers_i = self.layers[i](x, ...)`` becomes
``layers_i = checkpointed(self.layers[i], x, ...)``. In training (module in train mode and
grad enabled) ``checkpointed`` runs the layer under ``torch.utils.checkpoint`` (non-reentrant,
RNG state preserved so dropout recomputes identically): only the layer's inputs are kept and
its activations are recomputed in backward. Otherwise (eval, ``torch.no_grad``, export) it is
a plain call, so the pass costs nothing at inference.

A policy is a function ``(layer_index) -> bool`` (``compiler.policy``); the spec's
``training.checkpointing`` value (none / every_layer / {every: k} / {layers: [...]}) maps to
one. ``{every: k}`` checkpoints layers 0, k, 2k, ...
"""

from __future__ import annotations

from typing import Any

import torch
import torch.utils.checkpoint
from torch import fx, nn
from torch.fx.passes.infra.pass_base import PassResult

from compiler.policy import policy_from_spec
from compiler.graph_meta import CHECKPOINTED, KIND, LAYER


def checkpointed(block: nn.Module, *args: Any):
    """Call ``block(*args)``, recomputing it in backward when training."""
    if block.training and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(block, *args, use_reentrant=False,
                                                 preserve_rng_state=True)
    return block(*args)


def apply_checkpointing(gm: fx.GraphModule, policy: Any) -> PassResult:
    """Wrap the layers ``policy`` selects in ``checkpointed`` (in place).

    Requires: every layer is a ``call_module`` node with ``node.meta[KIND] == "block"`` and
        ``node.meta[LAYER]`` (as ``compiler.trace`` produces), or already wrapped; checked,
        an ``AssertionError`` names the first node that breaks it.
    Ensures: each selected block node is a ``call_function`` to ``checkpointed`` whose first
        argument is a ``get_attr`` of the same submodule; node names, metadata and users are
        kept, and ``node.meta[CHECKPOINTED] = True``. Already wrapped layers and unselected
        layers are untouched; parameters are not moved or renamed.
    Returns:
        ``PassResult(gm, modified)``: ``modified`` is False when no layer was selected.
    """
    select = policy_from_spec(policy)
    graph = gm.graph
    modified = False
    for node in list(graph.nodes):
        if node.op == "call_module" and str(node.target).startswith("layers."):
            assert node.meta.get(KIND) == "block" and LAYER in node.meta, (
                f"apply_checkpointing: layer node {node.name} has no block metadata; trace the "
                "model with compiler.trace")
        if node.op != "call_module" or node.meta.get(KIND) != "block":
            continue
        if not select(node.meta[LAYER]):
            continue
        with graph.inserting_before(node):
            block = graph.create_node("get_attr", node.target, name=f"block_{node.meta[LAYER]}")
        block.meta[KIND], block.meta[LAYER] = "block_module", node.meta[LAYER]
        node.op, node.target = "call_function", checkpointed
        node.args = (block, *node.args)
        node.meta[CHECKPOINTED] = True
        modified = True
    if modified:
        graph.lint()
        gm.recompile()
    return PassResult(gm, modified)
