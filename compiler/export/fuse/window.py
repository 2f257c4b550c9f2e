"""Which layers of a build get a window-sized cache (``blueprint build --window-cache``).

The bounded cache is a GroupQueryAttention feature (``sliding_window_cache = 1``), so it exists
only in the fused export, only for decoders with a KV cache, and only for layers with a sliding
window shorter than ``max_seq_len`` (``blueprint.window_cache.plan``). Asked for where it cannot
apply, the build stops and says why rather than silently building a full cache: the flag
changes what ``present.*`` holds, which a caller relies on.
"""

from __future__ import annotations

from blueprint.errors import BlueprintError
from blueprint.window_cache import WindowLayer, default_capacity, plan


def bounded_layers(spec, *, wanted: bool, fused: bool, portable: bool, dtype: str) -> dict[int, WindowLayer]:
    """Layer index -> its bounded cache for this build ({} when ``wanted`` is false).

    Raises:
        BlueprintError: ``--window-cache`` where it cannot apply (portable or plain export, an
            encoder, no window shorter than max_seq_len).
    """
    if not wanted:
        return {}
    flag = "--window-cache"
    if portable:
        raise BlueprintError(f"{flag} needs the fused export (GroupQueryAttention's window-sized cache); "
                             "--portable builds plain ONNX", hint=f"drop --portable or {flag}")
    if not spec.is_decoder:
        raise BlueprintError(f"{flag}: '{spec.name}' is an encoder; only decoders keep a KV cache",
                             hint=f"drop {flag}")
    if not fused:
        from compiler.export.fuse.eligible import why_not

        reason = why_not(spec, kv_cache=True, dtype=dtype) or "the build uses the plain export (--export whole)"
        raise BlueprintError(f"{flag} needs the fused export, and this build cannot have it: {reason}",
                             hint=f"drop {flag} (or --export whole)")
    layers = plan(spec)
    if not layers:
        windows = sorted({w for w in (spec.layer(i).attention.window for i in range(spec.num_layers)) if w})
        detail = (f"its windows {windows} need a capacity of at least "
                  f"{[default_capacity(w) for w in windows]} rows, not below max_seq_len {spec.max_seq_len}"
                  if windows else "no layer has attention.window")
        raise BlueprintError(f"{flag}: nothing to bound in '{spec.name}': {detail}",
                             hint=f"drop {flag}")
    return layers
