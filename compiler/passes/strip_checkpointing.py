"""Remove activation checkpointing: the inference graph for export."""

from __future__ import annotations

from torch import fx

from compiler.passes.checkpointing import checkpointed


def strip_checkpointing(gm: fx.GraphModule) -> fx.GraphModule:
    """Turn every ``checkpointed(self.layers[i], ...)`` back into ``self.layers[i](...)``
    (in place; returns ``gm``).

    Requires: wrapped nodes as ``apply_checkpointing`` makes them (first argument a
        ``get_attr`` of the block).
    Ensures: no node calls ``checkpointed``; each block is a ``call_module`` node with its
        original name, arguments and metadata; the helper ``get_attr`` nodes are gone.
        The computation is unchanged (checkpointing never changes values).
    """
    graph = gm.graph
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target is not checkpointed:
            continue
        block, *args = node.args
        node.op, node.target, node.args = "call_module", block.target, tuple(args)
        node.meta.pop("blueprint.checkpointed", None)
        if not block.users:
            graph.erase_node(block)
    graph.lint()
    gm.recompile()
    return gm
