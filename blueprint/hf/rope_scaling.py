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
        raise BlueprintError(f"config.json: rope scaling {where}.rope_type {rope_type!r} is not supported",
                             hint=hint)
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


def read_rope(r: Any, default_base: float = 10000.0) -> tuple[float, float, dict[str, Any]]:
    """(rope_base, rotary_fraction, scaling mapping) from a config's ``rope_parameters``
    (transformers 5) or ``rope_theta`` / ``rope_scaling`` (4.x), scaling included.

    ``r`` is a ``blueprint.hf.fields.ConfigReader``; ``max_position_embeddings`` and
    ``original_max_position_embeddings`` are read here (the latter fills a scaling that omits it,
    as Phi-3 configs do)."""
    params = dict(r.get("rope_parameters", {}) or {})
    legacy = r.get("rope_scaling")
    if legacy:
        params = {**params, **legacy}
    max_pos = r.get("max_position_embeddings")
    original = r.get("original_max_position_embeddings")
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type in ("su", "yarn") and r.family == "phi3":  # transformers' Phi-3 aliases for longrope
        rope_type = "longrope"
    params = {k: v for k, v in params.items() if k != "type"} | {"rope_type": rope_type}
    if rope_type in ("llama3", "yarn", "longrope") and original and "original_max_position_embeddings" not in params:
        params["original_max_position_embeddings"] = original
    base = params.get("rope_theta", r.first("rope_theta", "rotary_emb_base", default=default_base))
    fraction = params.get("partial_rotary_factor", r.first("partial_rotary_factor", "rotary_pct", default=1.0))
    return float(base), float(fraction), scaling_from_hf(params, max_pos)


def rope_parameters_with_scaling(pos: Any, scaling: Any | None = None) -> dict[str, Any]:
    """The ``rope_parameters`` export-hf writes for a spec's RoPE section: base, partial
    fraction and the scaling (``scaling`` overrides the section's, e.g. a layer type's own)."""
    out = {"rope_theta": pos.rope_base, "partial_rotary_factor": pos.rotary_fraction}
    return out | scaling_to_hf(scaling if scaling is not None else pos.scaling)
