"""Checking a canonical-name state dict against the spec before anything uses it.

The expected names and shapes come from ``compiler.naming.parameter_shapes(spec)``, the same
table the components are built from, so a checkpoint that passes here loads into the compiled
model with ``strict=True``. Every problem names the tensor and says what to do; all problems
are collected and reported together so one run shows everything that is wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from blueprint.errors import BlueprintError
from compiler.naming import parameter_shapes

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec

SPEC_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_MAX_LISTED = 12


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f", ... ({len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else "")


def validate_state_dict(
    tensors: dict[str, torch.Tensor], spec: "ModelSpec", *, source: str,
    origins: dict[str, str] | None = None,
) -> dict[str, torch.Tensor]:
    """Return ``tensors`` converted to the spec's dtype, in canonical order, or raise.

    ``origins`` maps canonical names to the checkpoint names they were mapped from; a problem
    with such a tensor names both.

    Raises:
        BlueprintError: missing, unexpected or wrong-shaped tensors, non-float dtypes,
            non-finite values, or values the spec's dtype cannot represent (overflow).
    """
    expected = parameter_shapes(spec)
    problems: list[str] = []
    missing = [n for n in expected if n not in tensors]
    unexpected = sorted(n for n in tensors if n not in expected)
    if missing:
        problems.append(f"missing tensors the spec needs: {_listing(missing)}")
    if unexpected:
        origin = origins or {}
        named = [n if origin.get(n, n) == n else f"{n} (checkpoint tensor '{origin[n]}')" for n in unexpected]
        problems.append(f"tensors with no place in the spec: {_listing(named)}")
    target = SPEC_DTYPES[spec.dtype]
    out: dict[str, torch.Tensor] = {}
    for name, shape in expected.items():
        if name not in tensors:
            continue
        t = tensors[name]
        origin = (origins or {}).get(name, name)
        what = f"'{name}'" if origin == name else f"'{name}' (checkpoint tensor '{origin}')"
        if tuple(t.shape) != shape:
            problems.append(f"{what} has shape {list(t.shape)}, the spec needs {list(shape)}")
            continue
        if not t.is_floating_point():
            problems.append(f"{what} has dtype {t.dtype}, which cannot hold a parameter")
            continue
        # float8 has no isfinite kernel; widening any float to float32/64 is exact.
        wide = t if t.dtype in (torch.float32, torch.float64) else t.float()
        if not bool(torch.isfinite(wide).all()):
            bad = int((~torch.isfinite(wide)).sum())
            problems.append(f"{what} contains {bad} non-finite value(s) (nan or inf)")
            continue
        converted = wide.to(target)
        if not bool(torch.isfinite(converted).all()):
            problems.append(
                f"{what} has values of magnitude up to {float(wide.abs().max()):.3g}, "
                f"which overflow the spec's dtype {spec.dtype}"
            )
            continue
        out[name] = converted.contiguous()
    if problems:
        raise BlueprintError(
            f"{source}: the weights do not match spec '{spec.name}':\n  - " + "\n  - ".join(problems),
            hint="check that the spec describes this checkpoint (sizes, biases, tied embeddings); "
            "`blueprint import-hf` writes a matching spec for a Hugging Face folder",
        )
    return out
