"""StableLM (``model_type: stablelm``; StableLM-3B-4E1T, StableLM 2): pre-LayerNorm with bias,
partial rotary, GQA, optional q/k/v bias (no o bias), a SwiGLU FFN without bias, untied head.

Refused, naming the mechanism: ``use_parallel_residual`` (its one input norm would need the
shared-norm rule, and the published parallel checkpoint also uses per-head q/k norms) and
``qk_layernorm`` (a separate LayerNorm per head; the spec's q/k norm is one norm shared by the heads)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.families import Family
from blueprint.families.llama import decoder_weights
from blueprint.families.weightmap import Rule
from blueprint.hf.common import rope, rope_parameters, rotary_fraction, sizes, token_ids
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    r.expect("hidden_act", ("silu",), "the SwiGLU FFN uses SiLU")
    r.expect("use_parallel_residual", (False,), "parallel StableLM (one shared input norm) is not modelled")
    r.expect("qk_layernorm", (False,), "StableLM's q/k LayerNorm has its own weights per head; the spec's "
             "qk_norm shares one norm across heads")
    # StableLM drops out after the MLP only; blueprint's residual dropout follows both sublayers.
    # Equal at inference, different in training, so only 0 is accepted.
    r.expect("hidden_dropout", (0.0, 0), "set hidden_dropout to 0 or train with blueprint's residual dropout")
    d = r.require("hidden_size")
    heads = r.heads("hidden_size", "num_attention_heads")
    base, fraction = rope(r)
    rotary_fraction(fraction, d // heads)
    return {
        **sizes(r, d),
        "dropout": {"attention": r.get("attention_dropout", 0.0)},
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "rope", "rope_base": base, "rotary_fraction": fraction},
        "norm": {"kind": "layernorm", "norm_eps": r.get("layer_norm_eps", 1e-5)},
        "final_norm": True,
        "block": {
            "norm_placement": "pre",
            "attention": {"num_heads": heads, "num_kv_heads": r.get("num_key_value_heads", heads),
                          "head_dim": d // heads, "causal": True,
                          "qkv_bias": bool(r.get("use_qkv_bias", False)), "out_bias": False},
            "ffn": {"kind": "swiglu", "hidden_dim": r.require("intermediate_size"), "bias": False},
        },
        "head": {"kind": "causal_lm"},
        "_tokenizer": token_ids(r),
    }


def detect(spec: "ModelSpec") -> str | None:
    if (spec.is_decoder and spec.positional.kind == "rope" and spec.norm.kind == "layernorm"
            and spec.norm.weight and spec.block.ffn.kind == "swiglu"  # no weight: OLMo's
            and spec.positional.layout == "half_split"):  # interleaved: cohere.py
        return "stablelm"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a, f = spec.block.attention, spec.block.ffn
    return {
        "architectures": ["StableLmForCausalLM"], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "intermediate_size": f.hidden_dim, "num_hidden_layers": spec.num_layers,
        "num_attention_heads": a.num_heads, "num_key_value_heads": a.kv_heads, "hidden_act": "silu",
        "max_position_embeddings": spec.max_seq_len, "layer_norm_eps": spec.norm.norm_eps,
        "rope_parameters": rope_parameters(spec), "use_qkv_bias": a.qkv_bias, "qk_layernorm": False,
        "use_parallel_residual": False, "hidden_dropout": 0.0, "attention_dropout": spec.dropout.attention,
        "tie_word_embeddings": spec.tie_embeddings, "initializer_range": spec.init.std,
    }


WEIGHTS = decoder_weights(
    Rule("layers.{i}.input_layernorm.{part}", "layers.{i}.attn_norm.{part}"),
    Rule("layers.{i}.self_attn.{x:q|k|v|o}_proj.{part}", "layers.{i}.attn.{x}_proj.{part}"),
    Rule("layers.{i}.post_attention_layernorm.{part}", "layers.{i}.ffn_norm.{part}"),
    Rule("layers.{i}.mlp.{x:gate|up|down}_proj.weight", "layers.{i}.ffn.{x}_proj.weight"),
    final_norm="{part}",
    rope_buffer=False,
)

FAMILY = Family(name="stablelm", model_types=("stablelm",), to_spec=to_spec, detect=detect,
                to_config=to_config, weights=WEIGHTS)
