"""Phi-3, Phi-3.5 and Phi-4-mini (``model_type: phi3``): LLaMA's pre-RMSNorm SwiGLU decoder with
fused projections (``qkv_proj`` rows [q; k; v], ``gate_up_proj`` rows [gate; up]), an optional
sliding window on every layer, partial rotary (Phi-4-mini: 0.75) and LongRoPE for the long
context variants (``rope_parameters.rope_type: longrope``; transformers also reads the legacy
"su" / "yarn" names as longrope).

A spec with full rotary and plain RoPE is LLaMA's (or Mistral's, with a window) and is claimed by
``llama.py``; this family claims the RMSNorm/SwiGLU decoders that need Phi-3's config:
LongRoPE or partial rotary, no biases, no QK-norm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.errors import BlueprintError
from blueprint.families import Family
from blueprint.families.llama import decoder_weights
from blueprint.families.weightmap import Rule
from blueprint.hf.common import rotary_fraction, sizes, token_ids
from blueprint.hf.fields import ConfigReader
from blueprint.hf.rope_scaling import read_rope, rope_parameters_with_scaling

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    r.expect("hidden_act", ("silu",), "Phi-3's gated FFN uses SiLU")
    d = r.require("hidden_size")
    heads = r.heads("hidden_size", "num_attention_heads")
    head_dim = d // heads
    base, fraction, scaling = read_rope(r)
    if scaling["kind"] not in ("none", "longrope"):
        raise BlueprintError(f"config.json: Phi-3 takes default or longrope RoPE, got {scaling['kind']!r}")
    window = r.get("sliding_window")
    return {
        **sizes(r, d),
        "dropout": {"embed": r.get("embd_pdrop", 0.0), "attention": r.get("attention_dropout", 0.0),
                    "residual": r.get("resid_pdrop", 0.0)},
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "rope", "rope_base": base,
                       "rotary_fraction": rotary_fraction(fraction, head_dim), "scaling": scaling},
        "norm": {"kind": "rmsnorm", "norm_eps": r.get("rms_norm_eps", 1e-5)},
        "final_norm": True,
        "block": {
            "norm_placement": "pre",
            "attention": {"num_heads": heads, "num_kv_heads": r.get("num_key_value_heads", heads),
                          "head_dim": head_dim, "window": window},
            "ffn": {"kind": "swiglu", "hidden_dim": r.require("intermediate_size")},
        },
        "head": {"kind": "causal_lm"},
        "_tokenizer": token_ids(r),
    }


def detect(spec: "ModelSpec") -> str | None:
    b, pos = spec.block, spec.positional
    if not (spec.is_decoder and pos.kind == "rope" and spec.norm.kind == "rmsnorm" and b.ffn.kind == "swiglu"):
        return None
    if pos.scaling.kind == "longrope" or pos.rotary_fraction != 1.0:
        return "phi3"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a, f, pos = spec.block.attention, spec.block.ffn, spec.positional
    original = getattr(pos.scaling, "original_max_seq_len", spec.max_seq_len)
    return {
        "architectures": ["Phi3ForCausalLM"], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "intermediate_size": f.hidden_dim, "num_hidden_layers": spec.num_layers,
        "num_attention_heads": a.num_heads, "num_key_value_heads": a.kv_heads, "hidden_act": "silu",
        "max_position_embeddings": spec.max_seq_len, "original_max_position_embeddings": original,
        "rms_norm_eps": spec.norm.norm_eps, "initializer_range": spec.init.std,
        "tie_word_embeddings": spec.tie_embeddings, "sliding_window": a.window,
        "embd_pdrop": spec.dropout.embed, "resid_pdrop": spec.dropout.residual,
        "attention_dropout": spec.dropout.attention, "rope_parameters": rope_parameters_with_scaling(pos),
    }


WEIGHTS = decoder_weights(
    Rule("layers.{i}.input_layernorm.weight", "layers.{i}.attn_norm.weight"),
    Rule("layers.{i}.self_attn.qkv_proj.weight", "layers.{i}.attn.{n}_proj.weight", "qkv"),
    Rule("layers.{i}.self_attn.o_proj.weight", "layers.{i}.attn.o_proj.weight"),
    Rule("layers.{i}.post_attention_layernorm.weight", "layers.{i}.ffn_norm.weight"),
    Rule("layers.{i}.mlp.gate_up_proj.weight", "layers.{i}.ffn.{n}_proj.weight", "gate_up"),
    Rule("layers.{i}.mlp.down_proj.weight", "layers.{i}.ffn.down_proj.weight"),
)

FAMILY = Family(name="phi3", model_types=("phi3",), to_spec=to_spec, detect=detect, to_config=to_config,
                weights=WEIGHTS)
