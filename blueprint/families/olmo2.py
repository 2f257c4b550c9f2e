"""OLMo 2 (``model_type: olmo2``): RMSNorm on each sublayer's OUTPUT inside the residual,
x + norm(f(x)) (``norm_placement: post_sublayer``), RMSNorm over the whole q and k projections
(``qk_norm_scope: projection``), RoPE, GQA, a SwiGLU FFN."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.families import Family
from blueprint.families.llama import decoder_weights
from blueprint.families.weightmap import Rule
from blueprint.hf.common import full_rope, sizes, token_ids
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    r.expect("hidden_act", ("silu",), "the SwiGLU FFN uses SiLU")
    d = r.require("hidden_size")
    heads = r.heads("hidden_size", "num_attention_heads")
    base = full_rope(r, "olmo2")
    bias = bool(r.get("attention_bias", False))
    return {
        **sizes(r, d),
        "dropout": {"attention": r.get("attention_dropout", 0.0)},
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "rope", "rope_base": base},
        "norm": {"kind": "rmsnorm", "norm_eps": r.get("rms_norm_eps", 1e-6)},
        "final_norm": True,
        "block": {
            "norm_placement": "post_sublayer",
            "attention": {"num_heads": heads, "num_kv_heads": r.get("num_key_value_heads", heads),
                          "head_dim": d // heads, "causal": True, "qkv_bias": bias, "out_bias": bias,
                          "qk_norm": True, "qk_norm_scope": "projection"},
            "ffn": {"kind": "swiglu", "hidden_dim": r.require("intermediate_size"), "bias": False},
        },
        "head": {"kind": "causal_lm"},
        "_tokenizer": token_ids(r),
    }


def detect(spec: "ModelSpec") -> str | None:
    if (spec.is_decoder and spec.positional.kind == "rope" and spec.norm.kind == "rmsnorm"
            and spec.block.ffn.kind == "swiglu" and spec.block.norm_placement == "post_sublayer"):
        return "olmo2"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a, f = spec.block.attention, spec.block.ffn
    return {
        "architectures": ["Olmo2ForCausalLM"], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "intermediate_size": f.hidden_dim, "num_hidden_layers": spec.num_layers,
        "num_attention_heads": a.num_heads, "num_key_value_heads": a.kv_heads, "hidden_act": "silu",
        "max_position_embeddings": spec.max_seq_len, "rms_norm_eps": spec.norm.norm_eps,
        "initializer_range": spec.init.std, "tie_word_embeddings": spec.tie_embeddings,
        "attention_bias": a.qkv_bias, "attention_dropout": spec.dropout.attention,
        "rope_parameters": {"rope_theta": spec.positional.rope_base, "rope_type": "default"},
    }


WEIGHTS = decoder_weights(
    Rule("layers.{i}.self_attn.{x:q|k|v|o}_proj.{part}", "layers.{i}.attn.{x}_proj.{part}"),
    Rule("layers.{i}.self_attn.{x:q|k}_norm.weight", "layers.{i}.attn.{x}_norm.weight"),
    Rule("layers.{i}.post_attention_layernorm.weight", "layers.{i}.attn_out_norm.weight"),
    Rule("layers.{i}.post_feedforward_layernorm.weight", "layers.{i}.ffn_out_norm.weight"),
    Rule("layers.{i}.mlp.{x:gate|up|down}_proj.weight", "layers.{i}.ffn.{x}_proj.weight"),
)

FAMILY = Family(name="olmo2", model_types=("olmo2",), to_spec=to_spec, detect=detect, to_config=to_config,
                weights=WEIGHTS)
