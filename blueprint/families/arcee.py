"""Arcee (``model_type: arcee``; Arcee AFM-4.5B): LLaMA's decoder (pre-RMSNorm, RoPE, GQA,
optional ``attention_bias`` on q/k/v/o) with a plain, ungated MLP ``down(act(up(x)))`` whose
activation defaults to the squared ReLU (``relu2``); optional ``mlp_bias``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.families import Family
from blueprint.families.llama import decoder_weights
from blueprint.families.weightmap import Rule
from blueprint.hf.common import TO_HF_ACTIVATION, activation, full_rope, sizes, token_ids
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    d = r.require("hidden_size")
    heads = r.require("num_attention_heads")
    base = full_rope(r, "arcee")
    bias = bool(r.get("attention_bias", False))
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
                          "head_dim": r.get("head_dim", d // heads), "causal": True,
                          "qkv_bias": bias, "out_bias": bias},
            "ffn": {"kind": "mlp", "activation": activation(r, "hidden_act", "relu2"),
                    "hidden_dim": r.require("intermediate_size"), "bias": bool(r.get("mlp_bias", False))},
        },
        "head": {"kind": "causal_lm"},
        "_tokenizer": token_ids(r),
    }


def detect(spec: "ModelSpec") -> str | None:
    """The one RMSNorm + RoPE decoder with a plain (ungated) MLP."""
    if (spec.is_decoder and spec.positional.kind == "rope" and spec.norm.kind == "rmsnorm"
            and spec.block.ffn.kind == "mlp"):
        return "arcee"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a, f = spec.block.attention, spec.block.ffn
    return {
        "architectures": ["ArceeForCausalLM"], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "intermediate_size": f.hidden_dim, "num_hidden_layers": spec.num_layers,
        "num_attention_heads": a.num_heads, "num_key_value_heads": a.kv_heads, "head_dim": a.head_dim,
        "hidden_act": TO_HF_ACTIVATION[f.activation], "max_position_embeddings": spec.max_seq_len,
        "rms_norm_eps": spec.norm.norm_eps, "attention_bias": a.qkv_bias, "mlp_bias": f.bias,
        "rope_parameters": {"rope_theta": spec.positional.rope_base, "rope_type": "default"},
        "attention_dropout": spec.dropout.attention, "tie_word_embeddings": spec.tie_embeddings,
        "initializer_range": spec.init.std,
    }


WEIGHTS = decoder_weights(
    Rule("layers.{i}.input_layernorm.weight", "layers.{i}.attn_norm.weight"),
    Rule("layers.{i}.self_attn.{x:q|k|v|o}_proj.{part}", "layers.{i}.attn.{x}_proj.{part}"),
    Rule("layers.{i}.post_attention_layernorm.weight", "layers.{i}.ffn_norm.weight"),
    Rule("layers.{i}.mlp.{x:up|down}_proj.{part}", "layers.{i}.ffn.{x}_proj.{part}"),
)

FAMILY = Family(name="arcee", model_types=("arcee",), to_spec=to_spec, detect=detect, to_config=to_config,
                weights=WEIGHTS)
