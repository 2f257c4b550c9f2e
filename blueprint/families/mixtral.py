"""Mixtral (``model_type: mixtral``): Mistral's decoder (pre-RMSNorm, RoPE, GQA, an optional
sliding window) with a sparse mixture of SwiGLU experts in every layer: softmax over
``num_local_experts``, the top ``num_experts_per_tok`` renormalised (docs/moe.md).

Checkpoints store each expert separately (``block_sparse_moe.experts.{e}.w1`` gate, ``w3`` up,
``w2`` down), as transformers' ``save_pretrained`` writes them too."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.families import Family
from blueprint.families.llama import decoder_weights
from blueprint.families.weightmap import Rule
from blueprint.hf.common import full_rope, rope_parameters, sizes, token_ids
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    r.expect("hidden_act", ("silu",), "Mixtral's experts are SwiGLU FFNs (SiLU)")
    r.expect("router_jitter_noise", (0, 0.0), "router jitter (noise on the router input while training) is not "
             "modelled; blueprint trains without it")
    d = r.require("hidden_size")
    heads = r.require("num_attention_heads")
    base = full_rope(r, "mixtral")
    attention: dict[str, Any] = {"num_heads": heads, "num_kv_heads": r.get("num_key_value_heads", heads),
                                 "head_dim": r.get("head_dim", d // heads), "causal": True}
    window = r.get("sliding_window")
    if window is not None:
        attention["window"] = int(window)
    experts = r.require("num_local_experts")
    return {
        **sizes(r, d),
        "dropout": {"attention": r.get("attention_dropout", 0.0)},
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "rope", "rope_base": base},
        "norm": {"kind": "rmsnorm", "norm_eps": r.get("rms_norm_eps", 1e-5)},
        "final_norm": True,
        "block": {
            "norm_placement": "pre",
            "attention": attention,
            "ffn": {"kind": "moe", "num_experts": experts, "top_k": r.get("num_experts_per_tok", 2),
                    "expert": {"kind": "swiglu", "hidden_dim": r.require("intermediate_size")},
                    "router": {"normalize_top_k": True}},
        },
        "head": {"kind": "causal_lm"},
        "_tokenizer": token_ids(r),
    }


def detect(spec: "ModelSpec") -> str | None:
    """A renormalised SwiGLU mixture without shared expert or biases, attention without biases
    or q/k norm (Qwen-MoE and OLMoE specs have those)."""
    if not (spec.is_decoder and spec.positional.kind == "rope" and spec.norm.kind == "rmsnorm"):
        return None
    f, a = spec.block.ffn, spec.block.attention
    if f.kind != "moe" or f.shared_expert is not None or not f.router.normalize_top_k or f.router.bias:
        return None
    if f.expert.kind != "swiglu" or f.expert.bias or a.qkv_bias or a.out_bias or a.qk_norm:
        return None
    return "mixtral"


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a, f = spec.block.attention, spec.block.ffn
    return {
        "architectures": ["MixtralForCausalLM"], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "intermediate_size": f.expert.hidden_dim, "num_hidden_layers": spec.num_layers,
        "num_attention_heads": a.num_heads, "num_key_value_heads": a.kv_heads, "head_dim": a.head_dim,
        "hidden_act": "silu", "max_position_embeddings": spec.max_seq_len, "rms_norm_eps": spec.norm.norm_eps,
        "initializer_range": spec.init.std, "tie_word_embeddings": spec.tie_embeddings,
        "attention_dropout": spec.dropout.attention, "rope_parameters": rope_parameters(spec),
        "sliding_window": a.window, "num_local_experts": f.num_experts, "num_experts_per_tok": f.top_k,
        "router_jitter_noise": 0.0,
    }


_MOE = "layers.{i}.block_sparse_moe"
WEIGHTS = decoder_weights(
    Rule("layers.{i}.input_layernorm.weight", "layers.{i}.attn_norm.weight"),
    Rule("layers.{i}.self_attn.{x:q|k|v|o}_proj.weight", "layers.{i}.attn.{x}_proj.weight"),
    Rule("layers.{i}.post_attention_layernorm.weight", "layers.{i}.ffn_norm.weight"),
    Rule(f"{_MOE}.gate.weight", "layers.{i}.ffn.router.proj.weight"),
    Rule(f"{_MOE}.experts.{{e}}.w1.weight", "layers.{i}.ffn.experts.{e}.gate_proj.weight"),
    Rule(f"{_MOE}.experts.{{e}}.w3.weight", "layers.{i}.ffn.experts.{e}.up_proj.weight"),
    Rule(f"{_MOE}.experts.{{e}}.w2.weight", "layers.{i}.ffn.experts.{e}.down_proj.weight"),
)

FAMILY = Family(name="mixtral", model_types=("mixtral",), to_spec=to_spec, detect=detect,
                # the load-balancing loss weight: a training loss, no effect on what the model computes
                to_config=to_config, weights=WEIGHTS, irrelevant=frozenset({"router_aux_loss_coef"}))
