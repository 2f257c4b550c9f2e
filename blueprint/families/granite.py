"""Granite (``model_type: granite``; IBM Granite 3.x dense, PowerLM): LLaMA's layout plus four
scalars, each a spec field: ``embedding_multiplier`` (``embed_multiplier``),
``residual_multiplier`` (the block's ``residual_multiplier``), ``attention_multiplier`` (the
attention's ``softmax_scale``, replacing 1/sqrt(head_dim) outright) and ``logits_scaling`` (the
head's ``logit_scale`` is its reciprocal)."""

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
    d = r.require("hidden_size")
    heads = r.heads("hidden_size", "num_attention_heads")
    base = full_rope(r, "granite")
    bias = bool(r.get("attention_bias", False))
    positive = {}
    for key in ("embedding_multiplier", "residual_multiplier", "attention_multiplier", "logits_scaling"):
        positive[key] = float(r.get(key, 1.0))
        if positive[key] <= 0:
            raise BlueprintError(f"config.json: '{key}' = {positive[key]} must be positive")
    return {
        **sizes(r, d),
        "embed_multiplier": positive["embedding_multiplier"],
        "dropout": {"attention": r.get("attention_dropout", 0.0)},
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "rope", "rope_base": base},
        "norm": {"kind": "rmsnorm", "norm_eps": r.get("rms_norm_eps", 1e-6)},
        "final_norm": True,
        "block": {
            "norm_placement": "pre",
            "residual_multiplier": positive["residual_multiplier"],
            "attention": {"num_heads": heads, "num_kv_heads": r.get("num_key_value_heads", heads),
                          "head_dim": d // heads, "causal": True, "qkv_bias": bias, "out_bias": bias,
                          "softmax_scale": positive["attention_multiplier"]},
            "ffn": {"kind": "swiglu", "hidden_dim": r.require("intermediate_size"),
                    "bias": bool(r.get("mlp_bias", False))},
        },
        "head": {"kind": "causal_lm", "logit_scale": 1.0 / positive["logits_scaling"]},
        "_tokenizer": token_ids(r),
    }


def scaled(spec: "ModelSpec") -> bool:
    """Whether a RoPE + RMSNorm + SwiGLU decoder uses any of Granite's scalars (then it is
    Granite's, not LLaMA's, to export)."""
    return (spec.embed_multiplier != 1 or spec.head.logit_scale != 1
            or any(l.residual_multiplier != 1 or l.attention.softmax_scale is not None
                   for l in spec.resolved_layers()))


def detect(spec: "ModelSpec") -> str | None:
    if (spec.is_decoder and spec.positional.kind == "rope" and spec.norm.kind == "rmsnorm"
            and spec.block.ffn.kind == "swiglu" and scaled(spec)):
        return "granite"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    b, a, f = spec.block, spec.block.attention, spec.block.ffn
    return {
        "architectures": ["GraniteForCausalLM"], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "intermediate_size": f.hidden_dim, "num_hidden_layers": spec.num_layers,
        "num_attention_heads": a.num_heads, "num_key_value_heads": a.kv_heads, "hidden_act": "silu",
        "max_position_embeddings": spec.max_seq_len, "rms_norm_eps": spec.norm.norm_eps,
        "initializer_range": spec.init.std, "tie_word_embeddings": spec.tie_embeddings,
        "attention_bias": a.qkv_bias, "mlp_bias": f.bias, "attention_dropout": spec.dropout.attention,
        "rope_parameters": {"rope_theta": spec.positional.rope_base, "rope_type": "default"},
        "embedding_multiplier": spec.embed_multiplier, "residual_multiplier": b.residual_multiplier,
        "attention_multiplier": a.softmax_scale if a.softmax_scale is not None else a.head_dim ** -0.5,
        "logits_scaling": 1.0 / spec.head.logit_scale,
    }


WEIGHTS = LLAMA_WEIGHTS  # LLaMA's module and tensor names

FAMILY = Family(name="granite", model_types=("granite",), to_spec=to_spec, detect=detect,
                to_config=to_config, weights=WEIGHTS)
