"""BLOOM (``model_type: bloom``): ALiBi instead of positions, a LayerNorm right after the word
embeddings, pre-LayerNorm blocks with a tanh-GELU MLP, biases everywhere, the query/key/value
projection fused per head (rows [H, 3, hd], as GPT-NeoX), tied LM head.

BLOOM adds slope_h * (key position counted over real tokens) to the scores; blueprint's ALiBi
adds -slope_h * |query - key|. For a causal row the two differ by slope_h * query position, a
constant per row that softmax ignores, so they compute the same function, padded rows included.
BLOOM's configs give no context length (ALiBi has no table): ``max_seq_len`` is 2048, the length
the published checkpoints were trained with, unless the config carries ``seq_length``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.errors import BlueprintError
from blueprint.families import Family
from blueprint.families.weightmap import Rule, WeightMap
from blueprint.hf.common import token_ids
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec

TRAINED_LENGTH = 2048


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    r.expect("apply_residual_connection_post_layernorm", (False,),
             "the residual taken after the input LayerNorm is not modelled")
    r.get("pretraining_tp")  # tensor-parallel bookkeeping: the same function at tp 1
    r.expect("slow_but_exact", (False,), "slow_but_exact only changes how tensor-parallel slices are summed")
    d = r.first("hidden_size", "n_embed")
    if d is None:
        raise BlueprintError("config.json: 'hidden_size' is required for model_type 'bloom'")
    heads = r.require("n_head")
    if d % heads:
        raise BlueprintError(f"config.json: hidden_size ({d}) is not divisible by n_head ({heads})")
    return {
        "vocab_size": r.require("vocab_size"),
        "max_seq_len": r.get("seq_length", TRAINED_LENGTH),
        "embed_dim": d,
        "num_layers": r.require("n_layer"),
        "tie_embeddings": bool(r.get("tie_word_embeddings", True)),
        "dropout": {"attention": r.get("attention_dropout", 0.0), "residual": r.get("hidden_dropout", 0.0)},
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "alibi"},
        "norm": {"kind": "layernorm", "norm_eps": r.get("layer_norm_epsilon", 1e-5)},
        "embed_norm": True,
        "final_norm": True,
        "block": {
            "norm_placement": "pre",
            "attention": {"num_heads": heads, "qkv_bias": True, "out_bias": True},
            "ffn": {"kind": "mlp", "activation": "gelu_tanh", "hidden_dim": 4 * d, "bias": True},
        },
        "head": {"kind": "causal_lm"},
        "_tokenizer": token_ids(r),
    }


def detect(spec: "ModelSpec") -> str | None:
    if spec.is_decoder and spec.positional.kind == "alibi" and spec.embed_norm and spec.norm.kind == "layernorm":
        return "bloom"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a = spec.block.attention
    config = {
        "architectures": ["BloomForCausalLM"], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "n_layer": spec.num_layers, "n_head": a.num_heads, "layer_norm_epsilon": spec.norm.norm_eps,
        "initializer_range": spec.init.std, "tie_word_embeddings": spec.tie_embeddings,
        "hidden_dropout": spec.dropout.residual, "attention_dropout": spec.dropout.attention,
        "apply_residual_connection_post_layernorm": False, "pretraining_tp": 1, "slow_but_exact": False,
    }
    if spec.max_seq_len != TRAINED_LENGTH:
        config["seq_length"] = spec.max_seq_len  # read back by to_spec; transformers ignores it
    return config


WEIGHTS = WeightMap(
    prefix="transformer.",
    rules=(
        Rule("word_embeddings.weight", "embed.tokens.weight"),
        Rule("word_embeddings_layernorm.{part}", "embed.norm.{part}"),
        Rule("h.{i}.input_layernorm.{part}", "layers.{i}.attn_norm.{part}"),
        Rule("h.{i}.self_attention.query_key_value.{part}", "layers.{i}.attn.{n}_proj.{part}", "qkv_per_head"),
        Rule("h.{i}.self_attention.dense.{part}", "layers.{i}.attn.o_proj.{part}"),
        Rule("h.{i}.post_attention_layernorm.{part}", "layers.{i}.ffn_norm.{part}"),
        Rule("h.{i}.mlp.dense_h_to_4h.{part}", "layers.{i}.ffn.up_proj.{part}"),
        Rule("h.{i}.mlp.dense_4h_to_h.{part}", "layers.{i}.ffn.down_proj.{part}"),
        Rule("ln_f.{part}", "final_norm.{part}"),
        Rule("lm_head.weight", "head.proj.weight", base=False),
    ),
    tied_head="head.proj.weight",
)

FAMILY = Family(name="bloom", model_types=("bloom",), to_spec=to_spec, detect=detect, to_config=to_config,
                weights=WEIGHTS)
