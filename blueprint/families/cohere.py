"""Cohere (``model_type: cohere``; Command-R, Aya 23): a parallel block fed by ONE LayerNorm
without bias (``residual: parallel_shared_norm``), interleaved RoPE, GQA, a SwiGLU FFN, tied
embeddings and logits multiplied by ``logit_scale`` (the head's ``logit_scale``).

Refused: ``use_qk_norm`` (Cohere's q/k LayerNorm has its own weights per head; the spec's
q/k norm shares one across heads)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.errors import BlueprintError
from blueprint.families import Family
from blueprint.families.llama import WEIGHTS as LLAMA_WEIGHTS
from blueprint.hf.common import full_rope, sizes, token_ids
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    r.expect("hidden_act", ("silu",), "the SwiGLU FFN uses SiLU")
    r.expect("use_qk_norm", (False,), "Cohere's q/k LayerNorm has separate weights per head; the spec's "
             "qk_norm shares one norm across heads")
    d = r.require("hidden_size")
    heads = r.heads("hidden_size", "num_attention_heads")
    base = full_rope(r, "cohere")
    scale = float(r.get("logit_scale", 0.0625))
    if scale <= 0:
        raise BlueprintError(f"config.json: 'logit_scale' = {scale} must be positive")
    bias = bool(r.get("attention_bias", False))
    return {
        **sizes(r, d),
        "tie_embeddings": bool(r.get("tie_word_embeddings", True)),
        "dropout": {"attention": r.get("attention_dropout", 0.0)},
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "rope", "rope_base": base, "layout": "interleaved"},
        "norm": {"kind": "layernorm", "norm_eps": r.get("layer_norm_eps", 1e-5), "bias": False},
        "final_norm": True,
        "block": {
            "norm_placement": "pre",
            "residual": "parallel_shared_norm",
            "attention": {"num_heads": heads, "num_kv_heads": r.get("num_key_value_heads", heads),
                          "head_dim": d // heads, "causal": True, "qkv_bias": bias, "out_bias": bias},
            "ffn": {"kind": "swiglu", "hidden_dim": r.require("intermediate_size"), "bias": False},
        },
        "head": {"kind": "causal_lm", "logit_scale": scale},
        "_tokenizer": token_ids(r),
    }


def detect(spec: "ModelSpec") -> str | None:
    pos = spec.positional
    if (spec.is_decoder and pos.kind == "rope" and pos.layout == "interleaved"
            and spec.norm.kind == "layernorm" and spec.block.ffn.kind == "swiglu"):
        return "cohere"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a, f = spec.block.attention, spec.block.ffn
    return {
        "architectures": ["CohereForCausalLM"], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "intermediate_size": f.hidden_dim, "num_hidden_layers": spec.num_layers,
        "num_attention_heads": a.num_heads, "num_key_value_heads": a.kv_heads, "hidden_act": "silu",
        "max_position_embeddings": spec.max_seq_len, "layer_norm_eps": spec.norm.norm_eps,
        "logit_scale": spec.head.logit_scale, "tie_word_embeddings": spec.tie_embeddings,
        "attention_bias": a.qkv_bias, "attention_dropout": spec.dropout.attention, "use_qk_norm": False,
        "initializer_range": spec.init.std,
        "rope_parameters": {"rope_theta": spec.positional.rope_base, "rope_type": "default"},
    }


WEIGHTS = LLAMA_WEIGHTS  # LLaMA's tensor names; the one input norm is input_layernorm (attn_norm)

FAMILY = Family(name="cohere", model_types=("cohere",), to_spec=to_spec, detect=detect, to_config=to_config,
                weights=WEIGHTS)
