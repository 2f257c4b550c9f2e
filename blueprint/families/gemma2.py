"""Gemma 2 (``model_type: gemma2``): a sandwich-norm decoder (RMSNorm before and after each
sublayer) with Gemma's ``(1 + w)`` RMSNorm, embeddings scaled by sqrt(hidden_size), a tanh-GELU
gated FFN, GQA with scores scaled by query_pre_attn_scalar^-0.5 and soft-capped
(``attn_logit_softcapping``), sliding-window and global layers alternating per ``layer_types``,
and soft-capped final logits (``final_logit_softcapping``); tied LM head.

``layer_attention`` and ``layer_overrides`` are shared with Gemma 3 (gemma3.py): per-layer
attention settings become the block's (the most common) plus the fewest overrides (``every``
when the other layers repeat with a period, as Gemma's local/global patterns do).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from blueprint.errors import BlueprintError
from blueprint.families import Family
from blueprint.families.llama import decoder_weights
from blueprint.families.weightmap import Rule
from blueprint.hf.common import sizes, token_ids
from blueprint.hf.fields import ConfigReader
from blueprint.hf.rope_scaling import read_rope, rope_parameters_with_scaling

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec

_TYPES = ("sliding_attention", "full_attention")


def layer_types(r: ConfigReader, layers: int, default: list[str]) -> list[str]:
    types = r.get("layer_types") or default
    if len(types) != layers or any(t not in _TYPES for t in types):
        raise BlueprintError(f"config.json: layer_types must list {layers} of {', '.join(_TYPES)}; got {types}")
    return list(types)


def layer_overrides(per_layer: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the block's attention patch, overrides) for one attention patch per layer: the most
    common patch is the block's; each other distinct patch is one ``every`` override when its
    layers are offset, offset + k, ... to the end, else one override per layer."""
    keys = [repr(sorted(p.items())) for p in per_layer]
    common = max(dict.fromkeys(keys), key=keys.count)
    block = per_layer[keys.index(common)]
    overrides: list[dict[str, Any]] = []
    for key in dict.fromkeys(keys):
        if key == common:
            continue
        where = [i for i, k in enumerate(keys) if k == key]
        patch = {"attention": per_layer[where[0]]}
        step = where[1] - where[0] if len(where) > 1 else len(per_layer)
        if where == list(range(where[0], len(per_layer), step)):
            overrides.append({"every": step, "offset": where[0], "set": patch})
        else:
            overrides.extend({"index": i, "set": patch} for i in where)
    return block, overrides


def common_body(r: ConfigReader, layers: int) -> dict[str, Any]:
    """What Gemma 2 and Gemma 3 share: sizes, (1 + w) RMSNorm, sqrt(d) embedding scale, the
    sandwich block with its tanh-GELU gated FFN, attention scale, tied head, token ids."""
    act = r.first("hidden_activation", "hidden_act", default="gelu_pytorch_tanh")
    if act != "gelu_pytorch_tanh":
        raise BlueprintError(f"config.json: Gemma's FFN uses gelu_pytorch_tanh, got {act!r}")
    r.expect("attention_bias", (False,), "Gemma's projections have no biases")
    r.expect("use_bidirectional_attention", (None, False), "bidirectional Gemma (embedding models) is not modelled")
    d = r.require("hidden_size")
    heads = r.require("num_attention_heads")
    head_dim = r.get("head_dim", d // heads)
    return {
        **sizes(r, d),
        "tie_embeddings": bool(r.get("tie_word_embeddings", True)),
        "dropout": {"attention": r.get("attention_dropout", 0.0)},
        "init": {"std": r.get("initializer_range", 0.02)},
        "norm": {"kind": "rmsnorm", "norm_eps": r.get("rms_norm_eps", 1e-6), "weight_offset": 1.0},
        "embed_multiplier": math.sqrt(d),
        "final_norm": True,
        "block": {
            "norm_placement": "sandwich",
            "attention": {"num_heads": heads, "num_kv_heads": r.get("num_key_value_heads", heads),
                          "head_dim": head_dim,
                          "softmax_scale": r.get("query_pre_attn_scalar", head_dim) ** -0.5},
            "ffn": {"kind": "geglu", "activation": "gelu_tanh", "hidden_dim": r.require("intermediate_size")},
        },
        "_tokenizer": token_ids(r),
    }


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    layers = r.require("num_hidden_layers")
    body = common_body(r, layers)
    base, fraction, scaling = read_rope(r)
    if fraction != 1.0 or scaling["kind"] != "none":
        raise BlueprintError("config.json: Gemma 2 uses plain RoPE over the whole head")
    window = r.get("sliding_window")
    types = layer_types(r, layers, ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(layers)])
    per_layer = [{"window": window if t == "sliding_attention" else None} for t in types]
    block_attention, overrides = layer_overrides(per_layer)
    body["block"]["attention"].update(block_attention, softcap=r.get("attn_logit_softcapping"))
    body["positional"] = {"kind": "rope", "rope_base": base}
    body["layers"] = overrides
    body["head"] = {"kind": "causal_lm", "softcap": r.get("final_logit_softcapping")}
    r.get("cache_implementation")  # generation's cache class: the same function
    return body


def is_gemma_layout(spec: "ModelSpec") -> bool:
    b = spec.block
    return (spec.is_decoder and spec.positional.kind == "rope" and spec.norm.kind == "rmsnorm"
            and spec.norm.weight_offset == 1.0 and b.norm_placement == "sandwich" and b.ffn.kind == "geglu")


def detect(spec: "ModelSpec") -> str | None:
    return "gemma2" if is_gemma_layout(spec) and not spec.block.attention.qk_norm else None


def common_config(spec: "ModelSpec", architecture: str) -> dict[str, Any]:
    a, f = spec.block.attention, spec.block.ffn
    layers = spec.resolved_layers()
    windows = [layer.attention.window for layer in layers]
    return {
        "architectures": [architecture], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "intermediate_size": f.hidden_dim, "num_hidden_layers": spec.num_layers,
        "num_attention_heads": a.num_heads, "num_key_value_heads": a.kv_heads, "head_dim": a.head_dim,
        "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": spec.max_seq_len,
        "rms_norm_eps": spec.norm.norm_eps, "initializer_range": spec.init.std,
        "tie_word_embeddings": spec.tie_embeddings, "attention_bias": False,
        "attention_dropout": spec.dropout.attention,
        "query_pre_attn_scalar": _pre_attn_scalar(a.softmax_scale or a.head_dim ** -0.5),
        "sliding_window": next((w for w in windows if w), None),
        "layer_types": ["sliding_attention" if w else "full_attention" for w in windows],
    }


def _pre_attn_scalar(scale: float) -> float:
    """query_pre_attn_scalar for a softmax scale (scale^-2), as the whole number configs write
    when it is one (24 ** -0.5 squared back is 23.999999999999996)."""
    value = scale ** -2
    return round(value) if abs(value - round(value)) < 1e-9 * value else value


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    config = common_config(spec, "Gemma2ForCausalLM")
    config.update(rope_parameters=rope_parameters_with_scaling(spec.positional),
                  attn_logit_softcapping=spec.block.attention.softcap,
                  final_logit_softcapping=spec.head.softcap)
    return config


WEIGHTS = decoder_weights(
    Rule("layers.{i}.input_layernorm.weight", "layers.{i}.attn_norm.weight"),
    Rule("layers.{i}.self_attn.{x:q|k|v|o}_proj.weight", "layers.{i}.attn.{x}_proj.weight"),
    Rule("layers.{i}.self_attn.{x:q|k}_norm.weight", "layers.{i}.attn.{x}_norm.weight"),
    Rule("layers.{i}.post_attention_layernorm.weight", "layers.{i}.attn_out_norm.weight"),
    Rule("layers.{i}.pre_feedforward_layernorm.weight", "layers.{i}.ffn_norm.weight"),
    Rule("layers.{i}.mlp.{x:gate|up|down}_proj.weight", "layers.{i}.ffn.{x}_proj.weight"),
    Rule("layers.{i}.post_feedforward_layernorm.weight", "layers.{i}.ffn_out_norm.weight"),
)

FAMILY = Family(name="gemma2", model_types=("gemma2",), to_spec=to_spec, detect=detect, to_config=to_config,
                weights=WEIGHTS)
