"""Persimmon (``model_type: persimmon``; Adept Persimmon-8B): sequential pre-LayerNorm, partial
rotary, q/k/v fused per head ([H, 3, hd] rows), a LayerNorm over each head's q and k (one
norm shared by the heads), biases everywhere, a squared-ReLU MLP, untied head. Without
``qk_layernorm`` the layer is GPT-NeoX's sequential one, and export-hf writes it as gpt_neox.

Persimmon drops out after the MLP only; blueprint's residual dropout follows both sublayers.
Equal at inference, different in training, so only ``hidden_dropout: 0`` is imported (the
published checkpoints' value)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.families import Family
from blueprint.families.gpt_neox import parallel_rope_body, persimmon_layout
from blueprint.families.weightmap import Rule, Unused, WeightMap, buffer
from blueprint.hf.common import TO_HF_ACTIVATION, rope_parameters
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    r.expect("hidden_dropout", (0.0, 0), "set hidden_dropout to 0 or train with blueprint's residual dropout")
    d = r.require("hidden_size")
    heads = r.heads("hidden_size", "num_attention_heads")
    return parallel_rope_body(
        r, d, residual="sequential", attention={"num_heads": heads, "head_dim": d // heads,
                                               "qk_norm": bool(r.get("qk_layernorm", True))},
        dropout={"attention": r.get("attention_dropout", 0.0)}, activation_default="relu2",
        head={"kind": "causal_lm"})


def detect(spec: "ModelSpec") -> str | None:
    return "persimmon" if persimmon_layout(spec) else None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a, f = spec.block.attention, spec.block.ffn
    return {
        "architectures": ["PersimmonForCausalLM"], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "intermediate_size": f.hidden_dim, "num_hidden_layers": spec.num_layers,
        "num_attention_heads": a.num_heads, "hidden_act": TO_HF_ACTIVATION[f.activation],
        "max_position_embeddings": spec.max_seq_len, "layer_norm_eps": spec.norm.norm_eps,
        "rope_parameters": rope_parameters(spec), "qk_layernorm": True, "hidden_dropout": 0.0,
        "attention_dropout": spec.dropout.attention, "tie_word_embeddings": spec.tie_embeddings,
        "initializer_range": spec.init.std,
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
