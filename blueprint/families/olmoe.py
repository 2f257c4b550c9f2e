"""OLMoE (``model_type: olmoe``): pre-RMSNorm, RoPE, RMSNorm over the whole q and k projections
(not per head), and a sparse mixture of SwiGLU experts in every layer (softmax, top
``num_experts_per_tok``, renormalised when ``norm_topk_prob``; docs/moe.md).

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


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    r.expect("hidden_act", ("silu",), "OLMoE's experts are SwiGLU FFNs (SiLU)")
    r.expect("clip_qkv", (None,), "clamping q/k/v (clip_qkv) is not modelled")
    d = r.require("hidden_size")
    heads = r.require("num_attention_heads")
    base = full_rope(r, "olmoe")
    bias = bool(r.get("attention_bias", False))
    experts = r.get("num_experts", r.get("num_local_experts"))
    if experts is None:
        raise BlueprintError("config.json: num_experts is missing")
    return {
        **sizes(r, d),
        "dropout": {"attention": r.get("attention_dropout", 0.0)},
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "rope", "rope_base": base},
        "norm": {"kind": "rmsnorm", "norm_eps": r.get("rms_norm_eps", 1e-5)},
        "final_norm": True,
        "block": {
            "norm_placement": "pre",
            "attention": {"num_heads": heads, "num_kv_heads": r.get("num_key_value_heads", heads),
                          "head_dim": d // heads, "causal": True, "qkv_bias": bias, "out_bias": bias,
                          "qk_norm": True, "qk_norm_scope": "projection"},
            "ffn": {"kind": "moe", "num_experts": experts, "top_k": r.get("num_experts_per_tok", 8),
                    "expert": {"kind": "swiglu", "hidden_dim": r.require("intermediate_size")},
                    "router": {"normalize_top_k": bool(r.get("norm_topk_prob", False))}},
        },
        "head": {"kind": "causal_lm"},
        "_tokenizer": token_ids(r),
    }


def detect(spec: "ModelSpec") -> str | None:
    if not (spec.is_decoder and spec.positional.kind == "rope" and spec.norm.kind == "rmsnorm"):
        return None
    f, a = spec.block.ffn, spec.block.attention
    if (f.kind == "moe" and f.expert.kind == "swiglu" and f.shared_expert is None and a.qk_norm
            and a.qk_norm_scope == "projection"):
        return "olmoe"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a, f = spec.block.attention, spec.block.ffn
    return {
        "architectures": ["OlmoeForCausalLM"], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "intermediate_size": f.expert.hidden_dim, "num_hidden_layers": spec.num_layers,
        "num_attention_heads": a.num_heads, "num_key_value_heads": a.kv_heads, "hidden_act": "silu",
        "max_position_embeddings": spec.max_seq_len, "rms_norm_eps": spec.norm.norm_eps,
        "initializer_range": spec.init.std, "tie_word_embeddings": spec.tie_embeddings,
        "attention_dropout": spec.dropout.attention, "attention_bias": a.qkv_bias,
        "rope_parameters": rope_parameters(spec), "clip_qkv": None, "num_experts": f.num_experts,
        "num_experts_per_tok": f.top_k, "norm_topk_prob": f.router.normalize_top_k,
    }


_MLP = "layers.{i}.mlp"
WEIGHTS = decoder_weights(
    Rule("layers.{i}.input_layernorm.weight", "layers.{i}.attn_norm.weight"),
    Rule("layers.{i}.self_attn.{x:q|k|v|o}_proj.{part}", "layers.{i}.attn.{x}_proj.{part}"),
    Rule("layers.{i}.self_attn.{x:q|k}_norm.weight", "layers.{i}.attn.{x}_norm.weight"),
    Rule("layers.{i}.post_attention_layernorm.weight", "layers.{i}.ffn_norm.weight"),
    Rule(f"{_MLP}.gate.weight", "layers.{i}.ffn.router.proj.weight"),
    Rule(f"{_MLP}.experts.{{e}}.{{x:gate|up|down}}_proj.weight", "layers.{i}.ffn.experts.{e}.{x}_proj.weight"),
)

FAMILY = Family(name="olmoe", model_types=("olmoe",), to_spec=to_spec, detect=detect,
                to_config=to_config, weights=WEIGHTS, irrelevant=frozenset({"router_aux_loss_coef"}))
