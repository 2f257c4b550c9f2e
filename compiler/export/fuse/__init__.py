"""Fused export for onnxruntime: the decoder stack as contrib ops, chosen by measurement.

``why_not(spec, ...)`` says whether a spec is covered (``eligible``); ``emit_stack`` writes the
layers (``emit``) into the staged export (``compiler.export.stamp.export_staged(fused=True)``),
and ``emit_embed`` / ``emit_tail`` (``ends``) its embeddings and causal LM tail, so a covered
build never runs ``torch.onnx.export``; ends it does not cover are exported from the torch
components. The graph keeps the build's I/O contract (``past_key_values.*`` in, ``present.*``
out, same layout), so the verification gate, ``Decoder.forward`` and onnxruntime-genai drive it
like the plain export; it adds an optional ``logits_to_keep`` input (an initializer-backed
input, default 0 = every position) so generation computes the head for the last position only.
docs/build-speed.md has the measurements behind each fusion.
"""

from __future__ import annotations

from compiler.export.fuse.eligible import why_not
from compiler.export.fuse.ends import emit_embed, emit_tail, emitted_ends, why_not_embed, why_not_tail
from compiler.export.fuse.emit import emit_stack, keep_last
from compiler.export.fuse.packed import fold_packed_weights, is_fused

KEEP = "logits_to_keep"


def logits_to_keep_input():
    """The optional int64 scalar input ``logits_to_keep`` (default 0: logits for every position)."""
    import numpy as np
    import onnx_ir as ir

    tensor = ir.tensor(np.array(0, dtype=np.int64), name=KEEP)
    return ir.Value(name=KEEP, shape=ir.Shape([]), type=ir.TensorType(ir.DataType.INT64), const_value=tensor)


__all__ = ["KEEP", "emit_embed", "emit_stack", "emit_tail", "emitted_ends", "fold_packed_weights", "is_fused",
           "keep_last", "logits_to_keep_input", "why_not", "why_not_embed", "why_not_tail"]
