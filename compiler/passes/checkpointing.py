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

from compiler.policy import policy_from_spec
from compiler.trace import KIND, LAYER


def checkpointed(block: nn.Module, *args: Any):
    """Call ``block(*args)``, recomputing it in backward when training."""
    if block.training and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(block, *args, use_reentrant=False,
                                                 preserve_rng_state=True)
    return block(*args)


def apply_checkpointing(gm: fx.GraphModule, policy: Any) -> fx.GraphModule:
    """Wrap the layers ``policy`` selects in ``checkpointed`` (in place; returns ``gm``).

    Requires: block nodes are ``call_module`` nodes with ``node.meta["blueprint.kind"] ==
        "block"`` and ``["blueprint.layer"]`` (as ``compiler.trace`` produces).
    Ensures: each selected block node is a ``call_function`` to ``checkpointed`` whose first
        argument is a ``get_attr`` of the same submodule; node names, metadata and users are
        kept, and ``node.meta["blueprint.checkpointed"] = True``. Already wrapped layers and
        unselected layers are untouched; parameters are not moved or renamed.
    """
    select = policy_from_spec(policy)
    graph = gm.graph
    for node in list(graph.nodes):
        if node.op != "call_module" or node.meta.get(KIND) != "block":
            continue
        if not select(node.meta[LAYER]):
            continue
        with graph.inserting_before(node):
            block = graph.create_node("get_attr", node.target, name=f"block_{node.meta[LAYER]}")
        block.meta[KIND], block.meta[LAYER] = "block_module", node.meta[LAYER]
        node.op, node.target = "call_function", checkpointed
        node.args = (block, *node.args)
        node.meta["blueprint.checkpointed"] = True
    graph.lint()
    gm.recompile()
    return gm
