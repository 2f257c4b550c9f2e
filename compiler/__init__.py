"""Blueprint's compiler: ModelSpec -> torch.fx.GraphModule (and, in ``compiler.export``, ONNX).

``compile_spec`` is imported lazily so that light modules (``compiler.naming``,
``compiler.signature``) stay usable without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from blueprint.spec.schema import ModelSpec

__all__ = ["compile_spec"]


def compile_spec(spec: "ModelSpec", *, kv_cache: bool = False, device: Any = None,
                 checkpointing: bool = True, attention: str = "sdpa") -> "torch.fx.GraphModule":
    """Compile a validated spec into a trainable GraphModule (team contract 4).

    Args:
        spec: a validated ``ModelSpec``.
        kv_cache: decoders only; the graph takes ``past_key_values.{i}.key/.value`` and returns
            ``present.{i}.key/.value`` (past K/V with the new positions appended).
        device: where parameters live; ``"meta"`` builds shapes only (no memory, no init).
        checkpointing: apply the spec's ``training.checkpointing`` policy (the pass is a no-op
            in eval mode or under ``torch.no_grad``; ``compiler.passes.strip_checkpointing``
            removes it for export).
        attention: ``"sdpa"`` (the fused kernel, exported) or ``"analysis"`` (the softmax
            written out so per-head probabilities can be read; ``compiler.inspect``).

    Returns:
        A ``torch.fx.GraphModule`` in train mode whose parameters are initialised from
        ``spec.init`` (seeded) and named as ``compiler.naming.parameter_shapes(spec)``.

    Raises:
        BlueprintError: ``kv_cache=True`` for an encoder.
    """
    import torch

    from compiler.init import init_weights
    from compiler.lower import lower
    from compiler.passes import apply_checkpointing
    from compiler.trace import trace

    with torch.device(device or "cpu"):
        model = lower(spec, kv_cache=kv_cache, attention=attention)
    init_weights(model, spec)
    gm = trace(model)
    gm.meta["blueprint.spec"] = spec
    if checkpointing:
        gm = apply_checkpointing(gm, spec.training.checkpointing)
    return gm.train()
