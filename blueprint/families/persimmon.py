"""Persimmon (``model_type: persimmon``; Adept's Persimmon-8B, the language model inside Fuyu):
pre-LayerNorm, a fused per-head query_key_value, LayerNorm over each head's q and k (one norm
shared by the heads: the spec's ``qk_norm``), partial rotary, biases everywhere, and a plain MLP
with a squared ReLU (``relu2``).

Refused: ``hidden_dropout`` other than 0 (Persimmon drops out after the MLP only; blueprint's
residual dropout follows both sublayers). A Persimmon without ``qk_layernorm`` is GPT-NeoX's
sequential layer and is exported as gpt_neox."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.families import Family
from blueprint.families.gpt_neox import parallel_rope_layout
from blueprint.families.weightmap import Rule, Unused, WeightMap, buffer
from blueprint.hf.common import TO_HF_ACTIVATION, activation, rope, rope_parameters, rotary_fraction, sizes, token_ids
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
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
            "attention": {"num_heads": heads, "head_dim": d // heads, "causal": True, "qkv_bias": True,
                          "out_bias": True, "qk_norm": bool(r.get("qk_layernorm", True))},
            "ffn": {"kind": "mlp", "activation": activation(r, "hidden_act", "relu2"),
                    "hidden_dim": r.require("intermediate_size"), "bias": True},
        },
        "head": {"kind": "causal_lm"},
        "_tokenizer": token_ids(r),
    }


def detect(spec: "ModelSpec") -> str | None:
    if (parallel_rope_layout(spec) and spec.block.attention.qk_norm
            and not (spec.head.kind == "causal_lm" and spec.head.bias)):  # with an LM-head bias: Phi
        return "persimmon"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a, f = spec.block.attention, spec.block.ffn
    return {
        "architectures": ["PersimmonForCausalLM"], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "intermediate_size": f.hidden_dim, "num_hidden_layers": spec.num_layers,
        "num_attention_heads": a.num_heads, "hidden_act": TO_HF_ACTIVATION[f.activation],
        "max_position_embeddings": spec.max_seq_len, "layer_norm_eps": spec.norm.norm_eps,
        "qk_layernorm": a.qk_norm, "hidden_dropout": 0.0, "attention_dropout": spec.dropout.attention,
        "tie_word_embeddings": spec.tie_embeddings, "initializer_range": spec.init.std,
        "rope_parameters": rope_parameters(spec),
    }


WEIGHTS = WeightMap(
    prefix="model.",
    rules=(
        Rule("embed_tokens.weight", "embed.tokens.weight"),
        Rule("layers.{i}.input_layernorm.{part}", "layers.{i}.attn_norm.{part}"),
        Rule("layers.{i}.self_attn.query_key_value.{part}", "layers.{i}.attn.{n}_proj.{part}", "qkv_per_head"),
        Rule("layers.{i}.self_attn.dense.{part}", "layers.{i}.attn.o_proj.{part}"),
        Rule("layers.{i}.self_attn.{x:q|k}_layernorm.{part}", "layers.{i}.attn.{x}_norm.{part}"),
        Rule("layers.{i}.post_attention_layernorm.{part}", "layers.{i}.ffn_norm.{part}"),
        Rule("layers.{i}.mlp.dense_h_to_4h.{part}", "layers.{i}.ffn.up_proj.{part}"),
        Rule("layers.{i}.mlp.dense_4h_to_h.{part}", "layers.{i}.ffn.down_proj.{part}"),
        Rule("final_layernorm.{part}", "final_norm.{part}"),
        Rule("lm_head.weight", "head.proj.weight", base=False),
    ),
    unused=(Unused("layers.{i}.self_attn.rotary_emb.inv_freq", buffer),),
    tied_head="head.proj.weight",
)

FAMILY = Family(name="persimmon", model_types=("persimmon",), to_spec=to_spec, detect=detect,
                to_config=to_config, weights=WEIGHTS)
