"""Qwen2-MoE (``qwen2_moe``; Qwen1.5-MoE) and Qwen3-MoE (``qwen3_moe``): a LLaMA-like decoder whose
FFNs are sparse mixtures of SwiGLU experts (softmax, top ``num_experts_per_tok``, renormalised
when ``norm_topk_prob``; docs/moe.md). Qwen2-MoE adds q/k/v bias and a shared expert scaled by
a per-token sigmoid gate; Qwen3-MoE per-head q/k RMSNorm. Layers listed in ``mlp_only_layers``,
or not on the ``decoder_sparse_step`` grid, are dense SwiGLU FFNs of ``intermediate_size``
(per-layer overrides in the spec).

Checkpoints store each expert separately (``mlp.experts.{e}.{gate,up,down}_proj``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.errors import BlueprintError
from blueprint.families import Family
from blueprint.families.llama import decoder_weights
from blueprint.families.weightmap import Rule
from blueprint.hf.common import full_rope, rope_parameters, sizes, token_ids
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec

_ARCHITECTURES = {"qwen2_moe": "Qwen2MoeForCausalLM", "qwen3_moe": "Qwen3MoeForCausalLM"}


def _no_windows(r: ConfigReader) -> None:
    """Published Qwen MoE checkpoints attend globally; the window switches must say so."""
    r.expect("use_sliding_window", (False,), "sliding-window layers are not supported for Qwen MoE "
             "(the published checkpoints attend globally)")
    r.used.add("sliding_window")  # inert without use_sliding_window (transformers then writes 0)
    r.get("max_window_layers")
    types = r.get("layer_types")
    if types and any(t != "full_attention" for t in types):
        raise BlueprintError(f"config.json: layer_types has sliding layers; {r.family} is supported with "
                             "full attention only")


def _moe(r: ConfigReader) -> dict[str, Any]:
    experts = r.get("num_experts", r.get("num_local_experts"))
    if experts is None:
        raise BlueprintError("config.json: num_experts is missing")
    moe: dict[str, Any] = {
        "kind": "moe", "num_experts": experts, "top_k": r.get("num_experts_per_tok", 2),
        "expert": {"kind": "swiglu", "hidden_dim": r.require("moe_intermediate_size")},
        "router": {"normalize_top_k": bool(r.get("norm_topk_prob", False))},
    }
    if r.family == "qwen2_moe":
        shared = r.get("shared_expert_intermediate_size", 0)
        if shared:
            moe["shared_expert"] = {"kind": "swiglu", "hidden_dim": shared}
            moe["shared_expert_gate"] = "sigmoid"
    return moe


def _dense_layers(r: ConfigReader, layers: int) -> list[int]:
    """transformers' rule: layer i is sparse unless listed in mlp_only_layers or
    (i + 1) % decoder_sparse_step != 0."""
    only = set(r.get("mlp_only_layers", []) or [])
    step = r.get("decoder_sparse_step", 1)
    return [i for i in range(layers) if i in only or (i + 1) % step != 0]


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    family = r.family
    r.expect("hidden_act", ("silu",), "the experts are SwiGLU FFNs (SiLU)")
    d = r.require("hidden_size")
    heads = r.require("num_attention_heads")
    layers = r.require("num_hidden_layers")
    base = full_rope(r, family)
    _no_windows(r)
    if family == "qwen2_moe":
        bias = {"qkv_bias": bool(r.get("qkv_bias", True)), "out_bias": False}
    else:
        attention_bias = bool(r.get("attention_bias", False))
        bias = {"qkv_bias": attention_bias, "out_bias": attention_bias}
    attention = {"num_heads": heads, "num_kv_heads": r.get("num_key_value_heads", heads),
                 "head_dim": r.get("head_dim", d // heads), "causal": True, "qk_norm": family == "qwen3_moe", **bias}
    dense = _dense_layers(r, layers)
    dense_hidden = r.get("intermediate_size")
    if dense and dense_hidden is None:
        raise BlueprintError("config.json: intermediate_size is missing (the dense layers' FFN width)")
    overrides = [{"index": i, "set": {"ffn": {"kind": "swiglu", "hidden_dim": dense_hidden}}} for i in dense]
    return {
        **sizes(r, d),
        "dropout": {"attention": r.get("attention_dropout", 0.0)},
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "rope", "rope_base": base},
        "norm": {"kind": "rmsnorm", "norm_eps": r.get("rms_norm_eps", 1e-6)},
        "final_norm": True,
        "block": {"norm_placement": "pre", "attention": attention, "ffn": _moe(r)},
        "layers": overrides,
        "head": {"kind": "causal_lm"},
        "_tokenizer": token_ids(r),
    }


def detect(spec: "ModelSpec") -> str | None:
    """Qwen3-MoE: per-head q/k norm, no shared expert. Qwen2-MoE: a sigmoid-gated shared expert,
    or q/k/v bias without o bias, or unnormalised routing (Mixtral always renormalises)."""
    if not (spec.is_decoder and spec.positional.kind == "rope" and spec.norm.kind == "rmsnorm"):
        return None
    f, a = spec.block.ffn, spec.block.attention
    if f.kind != "moe" or f.expert.kind != "swiglu" or f.expert.bias or f.router.bias:
        return None
    if a.qk_norm:
        return "qwen3_moe" if f.shared_expert is None and getattr(a, "qk_norm_scope", "head") == "head" else None
    if f.shared_expert is not None:
        return "qwen2_moe" if f.shared_expert_gate == "sigmoid" else None
    if (a.qkv_bias and not a.out_bias) or not f.router.normalize_top_k:
        return "qwen2_moe"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a, f = spec.block.attention, spec.block.ffn
    layers = spec.resolved_layers()
    dense = [i for i, l in enumerate(layers) if l.ffn.kind != "moe"]
    config: dict[str, Any] = {
        "architectures": [_ARCHITECTURES[model_type]], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "num_hidden_layers": spec.num_layers, "num_attention_heads": a.num_heads,
        "num_key_value_heads": a.kv_heads, "hidden_act": "silu", "max_position_embeddings": spec.max_seq_len,
        "rms_norm_eps": spec.norm.norm_eps, "initializer_range": spec.init.std,
        "tie_word_embeddings": spec.tie_embeddings, "attention_dropout": spec.dropout.attention,
        "rope_parameters": rope_parameters(spec), "use_sliding_window": False,
        "num_experts": f.num_experts, "num_experts_per_tok": f.top_k, "moe_intermediate_size": f.expert.hidden_dim,
        "norm_topk_prob": f.router.normalize_top_k, "decoder_sparse_step": 1, "mlp_only_layers": dense,
        "intermediate_size": layers[dense[0]].ffn.hidden_dim if dense else 4 * spec.embed_dim,
    }
    if model_type == "qwen2_moe":
        config["qkv_bias"] = a.qkv_bias
        config["shared_expert_intermediate_size"] = f.shared_expert.hidden_dim if f.shared_expert else 0
    else:
        config["attention_bias"] = a.out_bias
        config["head_dim"] = a.head_dim
    return config


_MLP = "layers.{i}.mlp"
WEIGHTS = decoder_weights(
    Rule("layers.{i}.input_layernorm.weight", "layers.{i}.attn_norm.weight"),
    Rule("layers.{i}.self_attn.{x:q|k|v|o}_proj.{part}", "layers.{i}.attn.{x}_proj.{part}"),
    Rule("layers.{i}.self_attn.{x:q|k}_norm.weight", "layers.{i}.attn.{x}_norm.weight"),
    Rule("layers.{i}.post_attention_layernorm.weight", "layers.{i}.ffn_norm.weight"),
    Rule(f"{_MLP}.gate.weight", "layers.{i}.ffn.router.proj.weight"),
    Rule(f"{_MLP}.experts.{{e}}.{{x:gate|up|down}}_proj.weight", "layers.{i}.ffn.experts.{e}.{x}_proj.weight"),
    Rule(f"{_MLP}.shared_expert.{{x:gate|up|down}}_proj.weight", "layers.{i}.ffn.shared_expert.{x}_proj.weight"),
    Rule(f"{_MLP}.shared_expert_gate.weight", "layers.{i}.ffn.shared_expert_gate.weight"),
    Rule(f"{_MLP}.{{x:gate|up|down}}_proj.weight", "layers.{i}.ffn.{x}_proj.weight"),  # dense layers
)

FAMILY = Family(name="qwen_moe", model_types=("qwen2_moe", "qwen3_moe"), to_spec=to_spec, detect=detect,
                # the load-balancing loss weight: a training loss, no effect on what the model computes
                to_config=to_config, weights=WEIGHTS, irrelevant=frozenset({"router_aux_loss_coef"}))
