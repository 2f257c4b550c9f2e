"""OPT (``model_type: opt``): learned positions offset by 2 (OPT's legacy ``offset``: position p
reads row p + 2 of a [max_position_embeddings + 2, D] table), LayerNorm before each sublayer
(``do_layer_norm_before``, every published size but 350m) or after it, a ReLU MLP, biases
everywhere, tied LM head.

OPT-350m projects its 512-wide embeddings to the 1024-wide model and back
(``word_embed_proj_dim`` != ``hidden_size``): no spec field says that yet, so it is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.errors import BlueprintError
from blueprint.families import Family
from blueprint.families.weightmap import Rule, WeightMap
from blueprint.hf.common import activation, sizes, token_ids
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec

OFFSET = 2  # OPTLearnedPositionalEmbedding.offset


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    d = r.require("hidden_size")
    if r.get("word_embed_proj_dim", d) != d:
        raise BlueprintError(f"config.json: word_embed_proj_dim ({r.get('word_embed_proj_dim')}) != hidden_size "
                             f"({d}): OPT-350m's embedding projections are not modelled")
    r.expect("_remove_final_layer_norm", (False,), "a pre-norm OPT without its final LayerNorm is not modelled")
    r.expect("layer_norm_elementwise_affine", (True,), "LayerNorm without weight and bias is not modelled here")
    r.expect("enable_bias", (True,), "OPT without biases is not modelled")
    r.expect("layerdrop", (0.0,), "LayerDrop (skipping layers at random in training) is not modelled")
    pre = bool(r.get("do_layer_norm_before", True))
    return {
        **sizes(r, d),
        "tie_embeddings": bool(r.get("tie_word_embeddings", True)),  # OPT ties unless told otherwise
        "dropout": {"attention": r.get("attention_dropout", 0.0), "residual": r.get("dropout", 0.1)},
        "init": {"std": r.get("init_std", 0.02)},
        "positional": {"kind": "learned", "offset": OFFSET},
        "norm": {"kind": "layernorm", "norm_eps": 1e-5},  # nn.LayerNorm's default: OPT sets none
        "final_norm": pre,
        "block": {
            "norm_placement": "pre" if pre else "post",
            "attention": {"num_heads": r.heads("hidden_size", "num_attention_heads"), "qkv_bias": True,
                          "out_bias": True},
            "ffn": {"kind": "mlp", "activation": activation(r, "activation_function", "relu"),
                    "hidden_dim": r.require("ffn_dim"), "bias": True},
        },
        "head": {"kind": "causal_lm"},
        "_tokenizer": token_ids(r),
    }


def detect(spec: "ModelSpec") -> str | None:
    pos = spec.positional
    if spec.is_decoder and pos.kind == "learned" and pos.offset == OFFSET:
        return "opt"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    from blueprint.hf.common import TO_HF_ACTIVATION

    a, f = spec.block.attention, spec.block.ffn
    return {
        "architectures": ["OPTForCausalLM"], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "word_embed_proj_dim": spec.embed_dim, "num_hidden_layers": spec.num_layers, "ffn_dim": f.hidden_dim,
        "num_attention_heads": a.num_heads, "max_position_embeddings": spec.max_seq_len,
        "do_layer_norm_before": spec.block.norm_placement == "pre", "_remove_final_layer_norm": False,
        "activation_function": TO_HF_ACTIVATION[f.activation], "dropout": spec.dropout.residual,
        "attention_dropout": spec.dropout.attention, "layerdrop": 0.0, "init_std": spec.init.std,
        "enable_bias": True, "layer_norm_elementwise_affine": True, "tie_word_embeddings": spec.tie_embeddings,
    }


WEIGHTS = WeightMap(
    prefix="model.decoder.",
    rules=(
        Rule("embed_tokens.weight", "embed.tokens.weight"),
        Rule("embed_positions.weight", "embed.positions.weight"),
        Rule("layers.{i}.self_attn.{x:q|k|v}_proj.{part}", "layers.{i}.attn.{x}_proj.{part}"),
        Rule("layers.{i}.self_attn.out_proj.{part}", "layers.{i}.attn.o_proj.{part}"),
        Rule("layers.{i}.self_attn_layer_norm.{part}", "layers.{i}.attn_norm.{part}"),
        Rule("layers.{i}.fc1.{part}", "layers.{i}.ffn.up_proj.{part}"),
        Rule("layers.{i}.fc2.{part}", "layers.{i}.ffn.down_proj.{part}"),
        Rule("layers.{i}.final_layer_norm.{part}", "layers.{i}.ffn_norm.{part}"),
        Rule("final_layer_norm.{part}", "final_norm.{part}"),
        Rule("lm_head.weight", "head.proj.weight", base=False),
    ),
    tied_head="head.proj.weight",
)

FAMILY = Family(name="opt", model_types=("opt",), to_spec=to_spec, detect=detect, to_config=to_config,
                weights=WEIGHTS)
