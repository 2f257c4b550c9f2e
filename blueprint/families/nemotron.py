"""Nemotron (``model_type: nemotron``; Nemotron-4, Minitron, Nemotron-Mini): pre-norm with
LayerNorm1P (a LayerNorm with bias scaling by ``weight + 1``: the spec's ``weight_offset: 1``),
partial rotary, GQA, and a plain MLP with a squared ReLU (``relu2``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.families import Family
from blueprint.families.llama import decoder_weights
from blueprint.families.weightmap import Rule
from blueprint.hf.common import TO_HF_ACTIVATION, activation, rope, rope_parameters, rotary_fraction, sizes, token_ids
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    d = r.require("hidden_size")
    heads = r.require("num_attention_heads")
    head_dim = r.get("head_dim", d // heads)
    base, fraction = rope(r, default_base=10000.0)
    rotary_fraction(fraction, head_dim)
    bias = bool(r.get("attention_bias", False))
    return {
        **sizes(r, d),
        "dropout": {"attention": r.get("attention_dropout", 0.0)},
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "rope", "rope_base": base, "rotary_fraction": fraction},
        "norm": {"kind": "layernorm", "norm_eps": r.get("norm_eps", 1e-5), "weight_offset": 1.0},
        "final_norm": True,
        "block": {
            "norm_placement": "pre",
            "attention": {"num_heads": heads, "num_kv_heads": r.get("num_key_value_heads", heads),
                          "head_dim": head_dim, "causal": True, "qkv_bias": bias, "out_bias": bias},
            "ffn": {"kind": "mlp", "activation": activation(r, "hidden_act", "relu2"),
                    "hidden_dim": r.require("intermediate_size"), "bias": bool(r.get("mlp_bias", False))},
        },
        "head": {"kind": "causal_lm"},
        "_tokenizer": token_ids(r),
    }


def detect(spec: "ModelSpec") -> str | None:
    if (spec.is_decoder and spec.positional.kind == "rope" and spec.norm.kind == "layernorm"
            and spec.norm.weight_offset == 1 and spec.block.ffn.kind == "mlp"):
        return "nemotron"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a, f = spec.block.attention, spec.block.ffn
    return {
        "architectures": ["NemotronForCausalLM"], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "intermediate_size": f.hidden_dim, "num_hidden_layers": spec.num_layers,
        "num_attention_heads": a.num_heads, "num_key_value_heads": a.kv_heads, "head_dim": a.head_dim,
        "hidden_act": TO_HF_ACTIVATION[f.activation], "max_position_embeddings": spec.max_seq_len,
        "norm_eps": spec.norm.norm_eps, "initializer_range": spec.init.std,
        "tie_word_embeddings": spec.tie_embeddings, "attention_bias": a.qkv_bias, "mlp_bias": f.bias,
        "attention_dropout": spec.dropout.attention, "rope_parameters": rope_parameters(spec),
    }


WEIGHTS = decoder_weights(
    Rule("layers.{i}.input_layernorm.{part}", "layers.{i}.attn_norm.{part}"),
    Rule("layers.{i}.self_attn.{x:q|k|v|o}_proj.{part}", "layers.{i}.attn.{x}_proj.{part}"),
    Rule("layers.{i}.post_attention_layernorm.{part}", "layers.{i}.ffn_norm.{part}"),
    Rule("layers.{i}.mlp.{x:up|down}_proj.{part}", "layers.{i}.ffn.{x}_proj.{part}"),
    final_norm="{part}",
)

FAMILY = Family(name="nemotron", model_types=("nemotron",), to_spec=to_spec, detect=detect,
                to_config=to_config, weights=WEIGHTS)
