"""Graph passes: each a function GraphModule -> GraphModule with one job, stated
requirements and guarantees, and ``graph.lint()`` at the end."""

from compiler.passes.checkpointing import apply_checkpointing, checkpointed
from compiler.policy import policy_from_spec
from compiler.passes.strip_checkpointing import strip_checkpointing

__all__ = ["apply_checkpointing", "checkpointed", "policy_from_spec", "strip_checkpointing"]
