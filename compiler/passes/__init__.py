"""Graph passes: each a function GraphModule -> ``torch.fx``'s ``PassResult(graph_module,
modified)`` with one job, requirements it asserts, stated guarantees, and ``graph.lint()`` when
it changed the graph (docs/architecture.md, Contracts)."""

from compiler.passes.checkpointing import apply_checkpointing, checkpointed
from compiler.policy import policy_from_spec
from compiler.passes.strip_checkpointing import strip_checkpointing

__all__ = ["apply_checkpointing", "checkpointed", "policy_from_spec", "strip_checkpointing"]
