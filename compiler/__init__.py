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
                 checkpointing: bool = True, batch: int = 1, seq_len: int | None = None,
                 attention: str = "sdpa", initialise: bool = True) -> "torch.fx.GraphModule":
    """Compile a validated spec into a trainable GraphModule (docs/architecture.md, Contracts).

    Args:
        spec: a validated ``ModelSpec``.
        kv_cache: decoders only; the graph takes ``past_key_values.{i}.key/.value`` and returns
            ``present.{i}.key/.value`` (past K/V with the new positions appended).
        device: where parameters live; ``"meta"`` builds shapes only (no memory, no init).
        checkpointing: apply the spec's ``training.checkpointing`` policy (the pass is a no-op
            in eval mode or under ``torch.no_grad``); builds compile with ``False``.
        batch, seq_len: the shape one training forward runs at (default 1 x ``max_seq_len``);
            only a ``{memory_budget: SIZE}`` policy depends on them.
        attention: ``"sdpa"`` (the fused kernel, exported) or ``"analysis"`` (the softmax
            written out so per-head probabilities can be read; ``compiler.inspect``).
        initialise: draw the parameters from ``spec.init``; ``False`` leaves them as
            uninitialised memory, for a caller that overwrites every one of them (``blueprint
            build --weights`` loads a checkpoint, and refuses one that misses a parameter).

    Returns:
        A ``torch.fx.GraphModule`` in train mode whose parameters are initialised from
        ``spec.init`` (seeded), held in ``spec.dtype``, and named as
        ``compiler.naming.parameter_shapes(spec)``.

    Raises:
        BlueprintError: ``kv_cache=True`` for an encoder; parameters that cannot fit in the
            memory available (``compiler.budget``); a memory budget policy that cannot be met
            (``compiler.memory_budget``).
    """
    import torch

    from compiler.budget import check_fits
    from compiler.init import SkipDefaultInit, init_weights
    from compiler.lower import lower
    from compiler.passes import apply_checkpointing
    from compiler.policy import resolve_policy
    from compiler.graph_meta import SPEC
    from compiler.trace import trace

    if str(device) != "meta":
        check_fits(spec)  # from the cost model, before the allocator is asked
    with torch.device(device or "cpu"), SkipDefaultInit():  # init_weights or --weights set every parameter
        model = lower(spec, kv_cache=kv_cache, attention=attention)
    if any(True for _ in model.buffers()):  # a buffer's values come from its constructor: build it in full
        with torch.device(device or "cpu"):
            model = lower(spec, kv_cache=kv_cache, attention=attention)
    if initialise and str(device) != "meta":
        init_weights(model, spec)  # drawn in float32, so every dtype starts from the same numbers
    model = model.to(getattr(torch, spec.dtype))  # spec.dtype names a torch dtype: the graph's
    gm = trace(model)
    gm.meta[SPEC] = spec
    if checkpointing:
        policy = resolve_policy(spec, spec.training.checkpointing, batch=batch,
                                seq_len=seq_len or spec.max_seq_len)
        gm = apply_checkpointing(gm, policy).graph_module
    return gm.train()
