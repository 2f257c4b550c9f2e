"""OLMo (``model_type: olmo``; OLMo-1B/7B of 2024): LLaMA's layout with non-parametric
LayerNorms (no weight, no bias, eps 1e-5, the spec's ``weight: false, bias: false``) before
each sublayer and at the end.

Refused, naming the mechanism: ``clip_qkv`` (OLMo 1.7 clamps q, k and v; no spec field does)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.families import Family
from blueprint.families.llama import WEIGHTS as LLAMA_WEIGHTS
from blueprint.hf.common import full_rope, sizes, token_ids
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec

_EPS = 1e-5  # OlmoLayerNorm's, fixed in transformers (the config has no field for it)


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    r.expect("hidden_act", ("silu",), "the SwiGLU FFN uses SiLU")
    r.expect("clip_qkv", (None,), "OLMo 1.7's clamping of q, k and v is not modelled")
    d = r.require("hidden_size")
    heads = r.heads("hidden_size", "num_attention_heads")
    base = full_rope(r, "olmo")
    bias = bool(r.get("attention_bias", False))
    return {
        **sizes(r, d),
        "dropout": {"attention": r.get("attention_dropout", 0.0)},
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "rope", "rope_base": base},
        "norm": {"kind": "layernorm", "norm_eps": _EPS, "weight": False, "bias": False},
        "final_norm": True,
        "block": {
            "norm_placement": "pre",
            "attention": {"num_heads": heads, "num_kv_heads": r.get("num_key_value_heads", heads),
                          "head_dim": d // heads, "causal": True, "qkv_bias": bias, "out_bias": bias},
            "ffn": {"kind": "swiglu", "hidden_dim": r.require("intermediate_size"), "bias": False},
        },
        "head": {"kind": "causal_lm"},
        "_tokenizer": token_ids(r),
    }


def detect(spec: "ModelSpec") -> str | None:
    if (spec.is_decoder and spec.positional.kind == "rope" and spec.norm.kind == "layernorm"
            and not spec.norm.weight and spec.block.ffn.kind == "swiglu"):
        return "olmo"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a, f = spec.block.attention, spec.block.ffn
    return {
        "architectures": ["OlmoForCausalLM"], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "intermediate_size": f.hidden_dim, "num_hidden_layers": spec.num_layers,
        "num_attention_heads": a.num_heads, "num_key_value_heads": a.kv_heads, "hidden_act": "silu",
        "max_position_embeddings": spec.max_seq_len, "initializer_range": spec.init.std,
        "tie_word_embeddings": spec.tie_embeddings, "attention_bias": a.qkv_bias,
        "attention_dropout": spec.dropout.attention, "clip_qkv": None,
        "rope_parameters": {"rope_theta": spec.positional.rope_base, "rope_type": "default"},
    }


WEIGHTS = LLAMA_WEIGHTS  # LLaMA's tensor names; OLMo's norms have none

FAMILY = Family(name="olmo", model_types=("olmo",), to_spec=to_spec, detect=detect, to_config=to_config,
                weights=WEIGHTS)
