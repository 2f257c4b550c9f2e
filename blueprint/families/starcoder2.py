"""StarCoder2 (``model_type: starcoder2``): pre-LayerNorm with bias, full RoPE, GQA, one
``use_bias`` switch for every linear layer, a plain GELU-tanh MLP (``c_fc``/``c_proj``), an
optional sliding window on every layer, tied head by default.

Its dropouts sit where blueprint's do: after the embeddings, on the attention probabilities, and
after each sublayer (``residual_dropout``), so training matches too."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.families import Family
from blueprint.families.llama import decoder_weights
from blueprint.families.gpt_neox import starcoder2_layout
from blueprint.families.weightmap import Rule
from blueprint.hf.common import activation, full_rope, sizes, token_ids
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec

# transformers spells the tanh GELU two ways with the same formula; StarCoder2 checkpoints use this one
_TO_HF_ACTIVATION = {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "relu": "relu", "silu": "silu"}


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    d = r.require("hidden_size")
    heads = r.heads("hidden_size", "num_attention_heads")
    base = full_rope(r, "starcoder2")
    bias = bool(r.get("use_bias", True))
    attention: dict[str, Any] = {
        "num_heads": heads, "num_kv_heads": r.get("num_key_value_heads", heads), "head_dim": d // heads,
        "causal": True, "qkv_bias": bias, "out_bias": bias,
    }
    window = r.get("sliding_window")
    if window is not None:
        attention["window"] = int(window)
    residual = r.get("residual_dropout", 0.0)
    return {
        **sizes(r, d),
        "tie_embeddings": bool(r.get("tie_word_embeddings", True)),
        "dropout": {"embed": r.get("embedding_dropout", 0.0), "attention": r.get("attention_dropout", 0.0),
                    "residual": residual},
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "rope", "rope_base": base},
        "norm": {"kind": "layernorm", "norm_eps": r.get("norm_epsilon", 1e-5)},
        "final_norm": True,
        "block": {
            "norm_placement": "pre",
            "attention": attention,
            "ffn": {"kind": "mlp", "activation": activation(r, "hidden_act", "gelu_pytorch_tanh"),
                    "hidden_dim": r.require("intermediate_size"), "bias": bias},
        },
        "head": {"kind": "causal_lm"},
        "_tokenizer": token_ids(r),
    }


def detect(spec: "ModelSpec") -> str | None:
    """A sequential LayerNorm + full-RoPE + MLP decoder with one bias switch (gpt_neox.py's
    ``starcoder2_layout``; GPT-NeoX claims the parallel and partial-rotary ones, Falcon the rest)."""
    return "starcoder2" if starcoder2_layout(spec) else None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a, f = spec.block.attention, spec.block.ffn
    return {
        "architectures": ["Starcoder2ForCausalLM"], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "intermediate_size": f.hidden_dim, "num_hidden_layers": spec.num_layers,
        "num_attention_heads": a.num_heads, "num_key_value_heads": a.kv_heads,
        "hidden_act": _TO_HF_ACTIVATION[f.activation], "max_position_embeddings": spec.max_seq_len,
        "norm_epsilon": spec.norm.norm_eps, "use_bias": a.qkv_bias,
        "rope_parameters": {"rope_theta": spec.positional.rope_base, "rope_type": "default"},
        "sliding_window": spec.block.attention.window, "tie_word_embeddings": spec.tie_embeddings,
        "embedding_dropout": spec.dropout.embed, "attention_dropout": spec.dropout.attention,
        "residual_dropout": spec.dropout.residual, "initializer_range": spec.init.std,
    }


WEIGHTS = decoder_weights(
    Rule("layers.{i}.input_layernorm.{part}", "layers.{i}.attn_norm.{part}"),
    Rule("layers.{i}.self_attn.{x:q|k|v|o}_proj.{part}", "layers.{i}.attn.{x}_proj.{part}"),
    Rule("layers.{i}.post_attention_layernorm.{part}", "layers.{i}.ffn_norm.{part}"),
    Rule("layers.{i}.mlp.c_fc.{part}", "layers.{i}.ffn.up_proj.{part}"),
    Rule("layers.{i}.mlp.c_proj.{part}", "layers.{i}.ffn.down_proj.{part}"),
    final_norm="{part}",
    rope_buffer=False,
)

FAMILY = Family(name="starcoder2", model_types=("starcoder2",), to_spec=to_spec, detect=detect,
                to_config=to_config, weights=WEIGHTS)
