"""Gemma 3, text only (``model_type: gemma3_text``, ``Gemma3ForCausalLM``): Gemma 2's sandwich
decoder (gemma2.py) with per-head QK-norm ((1 + w) RMSNorm over head_dim), no soft-capping in the
published configs, five local layers per global one (``layer_types``) and RoPE per layer type:
local layers base 10000 unscaled, global layers base 1e6 with linear scaling (factor 8 from 4B
up). transformers 5 writes ``rope_parameters: {sliding_attention: ..., full_attention: ...}``;
configs written by 4.x say ``rope_theta`` / ``rope_scaling`` (global) and
``rope_local_base_freq`` (local), also read here.

In the spec the positional section holds the global layers' RoPE; the local layers (the block,
being the most common) carry their own ``rope_base`` and, when the global one is scaled, an
explicit ``rope_scaling: {kind: none}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.errors import BlueprintError
from blueprint.families import Family
from blueprint.families.gemma2 import (WEIGHTS, common_body, common_config, is_gemma_layout, layer_overrides,
                                       layer_types)
from blueprint.hf.fields import ConfigReader
from blueprint.hf.rope_scaling import scaling_from_hf, scaling_to_hf

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec


def _rope(r: ConfigReader) -> tuple[dict[str, Any], dict[str, Any]]:
    """(global, local) rope_parameters mappings, from either config format."""
    params = dict(r.get("rope_parameters") or {})
    legacy_scaling = r.get("rope_scaling")
    local_base = r.get("rope_local_base_freq")
    theta = r.get("rope_theta")
    if set(params) & {"full_attention", "sliding_attention"}:
        unknown = sorted(set(params) - {"full_attention", "sliding_attention"})
        if unknown:
            raise BlueprintError(f"config.json: rope_parameters layer type(s) {unknown} are not Gemma 3's")
        full = dict(params.get("full_attention", {"rope_theta": theta or 1e6}))
        local = dict(params.get("sliding_attention", {"rope_theta": local_base or 1e4}))
    else:
        full = {"rope_theta": theta if theta is not None else params.get("rope_theta", 1e6), **params,
                **(legacy_scaling or {})}
        local = {"rope_type": "default", "rope_theta": local_base if local_base is not None else 1e4}
    for name, p in (("full_attention", full), ("sliding_attention", local)):
        if p.get("partial_rotary_factor", 1.0) != 1.0:
            raise BlueprintError(f"config.json: Gemma 3 rotates whole heads; {name} has partial_rotary_factor")
    return full, local


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    layers = r.require("num_hidden_layers")
    body = common_body(r, layers)
    r.first("_sliding_window_pattern", "sliding_window_pattern")  # layer_types says the same, per layer
    full, local = _rope(r)
    max_pos = r.get("max_position_embeddings")
    global_scaling = scaling_from_hf(full, max_pos, "rope_parameters.full_attention")
    local_scaling = scaling_from_hf(local, max_pos, "rope_parameters.sliding_attention")
    scaled = global_scaling["kind"] != "none" or local_scaling["kind"] != "none"
    window = r.get("sliding_window")
    default = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(layers)]
    per_layer = []
    for t in layer_types(r, layers, default):
        if t == "sliding_attention":
            patch = {"window": window, "rope_base": float(local["rope_theta"])}
            patch.update({"rope_scaling": local_scaling} if scaled else {})
        else:
            patch = {"window": None, "rope_base": None}
            patch.update({"rope_scaling": None} if scaled else {})
        per_layer.append(patch)
    block_attention, overrides = layer_overrides(per_layer)
    body["block"]["attention"].update(block_attention, qk_norm=True, softcap=r.get("attn_logit_softcapping"))
    body["positional"] = {"kind": "rope", "rope_base": float(full["rope_theta"]), "scaling": global_scaling}
    body["layers"] = overrides
    body["head"] = {"kind": "causal_lm", "softcap": r.get("final_logit_softcapping")}
    r.get("cache_implementation")  # generation's cache class: the same function
    return body


def detect(spec: "ModelSpec") -> str | None:
    return "gemma3_text" if is_gemma_layout(spec) and spec.block.attention.qk_norm else None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    config = common_config(spec, "Gemma3ForCausalLM")
    pos = spec.positional
    rope: dict[str, Any] = {}
    for layer in spec.resolved_layers():
        a = layer.attention
        kind = "sliding_attention" if a.window else "full_attention"
        scaling = a.rope_scaling if a.rope_scaling is not None else pos.scaling
        rope.setdefault(kind, {"rope_theta": a.rope_base if a.rope_base is not None else pos.rope_base,
                               **scaling_to_hf(scaling)})
    config.update(rope_parameters=rope, attn_logit_softcapping=spec.block.attention.softcap,
                  final_logit_softcapping=spec.head.softcap)
    return config


FAMILY = Family(name="gemma3", model_types=("gemma3_text",), to_spec=to_spec, detect=detect, to_config=to_config,
                weights=WEIGHTS)
