"""Remove activation checkpointing: the inference graph for export."""

from __future__ import annotations

from torch import fx
from torch.fx.passes.infra.pass_base import PassResult

from compiler.graph_meta import CHECKPOINTED
from compiler.passes.checkpointing import checkpointed


def strip_checkpointing(gm: fx.GraphModule) -> PassResult:
    """Turn every ``checkpointed(self.layers[i], ...)`` back into ``self.layers[i](...)``
    (in place).

    Requires: wrapped nodes as ``apply_checkpointing`` makes them (first argument a
        ``get_attr`` of the block); checked, an ``AssertionError`` names the node.
    Ensures: no node calls ``checkpointed``; each block is a ``call_module`` node with its
        original name, arguments and metadata; the helper ``get_attr`` nodes are gone.
        The computation is unchanged (checkpointing never changes values).
    Returns:
        ``PassResult(gm, modified)``: ``modified`` is False when nothing was wrapped.
    """
    graph = gm.graph
    modified = False
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target is not checkpointed:
            continue
        block, *args = node.args
        assert isinstance(block, fx.Node) and block.op == "get_attr", (
            f"strip_checkpointing: {node.name} does not call checkpointed on a get_attr of its block")
        node.op, node.target, node.args = "call_module", block.target, tuple(args)
        node.meta.pop(CHECKPOINTED, None)
        if not block.users:
            graph.erase_node(block)
        modified = True
    if modified:
        graph.lint()
        gm.recompile()
    return PassResult(gm, modified)
