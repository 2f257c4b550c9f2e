"""RoPE scaling both ways between a transformers ``rope_parameters`` mapping and the spec's
``positional.scaling`` (or a layer's ``attention.rope_scaling``).

transformers 5 keeps one mapping per model (or per layer type, Gemma 3) with ``rope_type`` and
the type's fields (``ROPE_INIT_FUNCTIONS`` reads them). Every type the spec expresses maps
field for field; ``dynamic`` (NTK) is refused: transformers recomputes its frequencies from the
longest sequence the module has seen so far (state kept across calls), which no stateless graph
reproduces. Family modules call these helpers; nothing here is family specific.
"""

from __future__ import annotations

from typing import Any

from blueprint.errors import BlueprintError

# The fields of a rope_parameters mapping that are not scaling (the caller reads them).
BASE_FIELDS = {"rope_type", "type", "rope_theta", "partial_rotary_factor"}

# rope_type -> {transformers field: spec field}; required spec fields are the schema's business.
_FIELDS: dict[str, dict[str, str]] = {
    "default": {},
    "linear": {"factor": "factor"},
    "llama3": {"factor": "factor", "low_freq_factor": "low_freq_factor",
               "high_freq_factor": "high_freq_factor", "original_max_position_embeddings": "original_max_seq_len"},
    "yarn": {"factor": "factor", "original_max_position_embeddings": "original_max_seq_len",
             "beta_fast": "beta_fast", "beta_slow": "beta_slow", "mscale": "mscale",
             "mscale_all_dim": "mscale_all_dim", "attention_factor": "attention_factor", "truncate": "truncate"},
    "longrope": {"short_factor": "short_factor", "long_factor": "long_factor", "factor": "factor",
                 "original_max_position_embeddings": "original_max_seq_len",
                 "attention_factor": "attention_factor"},
}
_KIND = {"default": "none"}


def scaling_from_hf(params: dict[str, Any], max_position_embeddings: int | None,
                    where: str = "rope_parameters") -> dict[str, Any]:
    """The spec's scaling mapping for a transformers rope_parameters mapping.

    ``max_position_embeddings`` supplies what transformers derives when a field is absent: a
    longrope or yarn ``factor`` is max_position_embeddings / original_max_position_embeddings.

    Raises:
        BlueprintError: a rope type the spec cannot express, or a field it does not know.
    """
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type not in _FIELDS:
        hint = ("dynamic NTK scaling keeps state across calls in transformers (the longest sequence seen); "
                "no stateless graph reproduces it" if "dynamic" in str(rope_type) else
                f"supported rope types: {', '.join(sorted(_FIELDS))}")
        raise BlueprintError(f"config.json: {where}.rope_type {rope_type!r} is not supported", hint=hint)
    fields = _FIELDS[rope_type]
    unknown = sorted(set(params) - BASE_FIELDS - set(fields))
    if unknown:
        raise BlueprintError(f"config.json: {where} field(s) {unknown} are not understood for rope_type {rope_type!r}")
    out: dict[str, Any] = {"kind": _KIND.get(rope_type, rope_type)}
    for hf_name, name in fields.items():
        if params.get(hf_name) is not None:
            out[name] = params[hf_name]
    if rope_type in ("yarn", "longrope") and "factor" not in out:
        original = params.get("original_max_position_embeddings")
        if not original or not max_position_embeddings:
            raise BlueprintError(f"config.json: {where} ({rope_type}) gives no factor and no "
                                 "original_max_position_embeddings to derive it from")
        out["factor"] = max_position_embeddings / original
    return out


def scaling_to_hf(scaling: Any) -> dict[str, Any]:
    """The rope_parameters entries (rope_type and the type's fields, not rope_theta) for a spec
    scaling; every resolved field is written, so transformers derives nothing."""
    kind = scaling.kind
    rope_type = next((t for t, k in _KIND.items() if k == kind), kind)
    out: dict[str, Any] = {"rope_type": rope_type}
    for hf_name, name in _FIELDS[rope_type].items():
        value = getattr(scaling, name)
        if value is not None:
            out[hf_name] = list(value) if isinstance(value, (list, tuple)) else value
    return out
