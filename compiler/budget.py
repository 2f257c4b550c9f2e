"""Refuse to allocate a model that cannot fit in memory, before allocating it.

A spec with ``vocab_size: 100000000`` and ``embed_dim: 65536`` is valid, but compiling it asks
the allocator for terabytes: torch then fails deep inside ``nn.Embedding`` with a
RuntimeError, or the OOM killer ends the process with no message at all. The cost model knows
the parameter count exactly (``compiler.naming``), so the size is checked first and the
estimate goes into the message.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from blueprint.errors import BlueprintError

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


def available_memory() -> int | None:
    """Bytes this process may still allocate: MemAvailable, capped by a cgroup v2 limit; None if
    the platform does not say."""
    limits = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        if limit != "max":
            limits.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    if not limits:
        try:
            limits.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError, AttributeError):
            return None
    return max(0, min(limits))


def compile_bytes(spec: "ModelSpec") -> int:
    """Bytes compile_spec allocates for parameters: they are drawn in float32 and then cast to
    the spec's dtype, so a 16-bit spec briefly holds both copies."""
    from compiler.cost import params_by_component

    params = sum(params_by_component(spec).values())
    extra = 0 if spec.dtype == "float32" else DTYPE_BYTES[spec.dtype]
    return params * (4 + extra)


def build_bytes(spec: "ModelSpec") -> int:
    """Bytes a build holds at its peak, estimated: the compiled graph in the build dtype, the
    exported ONNX initializers (same dtype) and verification's float64 copy of the graph."""
    from compiler.cost import params_by_component

    return sum(params_by_component(spec).values()) * (2 * DTYPE_BYTES[spec.dtype] + 8)


def verify_bytes(spec: "ModelSpec", kv_cache: bool) -> int:
    """Bytes the largest verification case needs, estimated: onnxruntime materialises one
    layer's attention scores and probabilities [b, heads, s, s] (float32: 8 bytes per entry for
    the pair; measured: a 16-head, window-2048 spec peaked at 2.1 GB RSS against 2.0 GiB
    estimated), plus the float64 logits [b, s, vocab]. The "long sequence" case is longer than
    twice the widest window, so a window of 10^8 asks for hundreds of petabytes: refused here, not by the
    allocator after compiling and exporting.
    """
    try:
        from compiler.export.verify import verification_cases
    except ImportError:
        return 0
    heads = max(b.attention.num_heads for b in spec.resolved_layers())
    worst = 0
    for case in verification_cases(spec, kv_cache):
        b, s = case.shape.batch, case.shape.seq + sum(getattr(case, "steps", ()) or ())
        worst = max(worst, b * heads * s * s * 8 + b * s * max(spec.vocab_size, spec.embed_dim) * 8)
    return worst


def check_fits(spec: "ModelSpec", *, need: int | None = None, doing: str = "compiling it",
               hint: str | None = None) -> None:
    """Raise a BlueprintError if ``need`` bytes (default: what compiling ``spec`` allocates)
    exceed the memory available now."""
    need = compile_bytes(spec) if need is None else need
    have = available_memory()
    if have is None or need <= have:
        return
    from compiler.cost import params_by_component

    params = sum(params_by_component(spec).values())
    raise BlueprintError(
        f"'{spec.name}' has {params:,} parameters: {doing} needs about {_human(need)} "
        f"and this machine has {_human(have)} available",
        hint=hint or "shrink the spec (vocab_size, embed_dim, num_layers, hidden_dim); "
             "`blueprint explain` shows where the parameters are; compile_spec(spec, device='meta') "
             "builds the shapes without memory")


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
