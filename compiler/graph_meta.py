"""The metadata keys the compiler writes on a GraphModule and its nodes (docs/architecture.md,
Contracts 2): the tracer writes them, passes and tools select on them.

A leaf module (imports nothing from the compiler) so that the tracer, the passes and the
inspection tools can all import it without import cycles.
"""

from __future__ import annotations

# node.meta keys
KIND = "blueprint.kind"  # "input", "embed", "block", "block_output", "block_module", "final_norm", "head", "output"
LAYER = "blueprint.layer"  # the layer index of a layer's nodes
CHECKPOINTED = "blueprint.checkpointed"  # True on a block call the checkpointing pass wrapped

# gm.meta keys
INPUT_NAMES = "blueprint.input_names"  # compiler.signature's input names, in order
OUTPUT_NAMES = "blueprint.output_names"
SPEC = "blueprint.spec"  # the ModelSpec the graph was compiled from
