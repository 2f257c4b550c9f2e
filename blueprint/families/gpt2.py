"""GPT-2 (``model_type: gpt2``): learned positions, pre-LayerNorm, a GELU MLP, biases everywhere,
Conv1D weights stored [in, out] with q, k, v fused in ``c_attn``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.errors import BlueprintError
from blueprint.families import Family
from blueprint.families.weightmap import Rule, Unused, WeightMap, buffer
from blueprint.hf.common import TO_HF_ACTIVATION, activation, token_ids
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    r.expect("scale_attn_weights", (True,), "GPT-2 without 1/sqrt(head_dim) scaling is not modelled")
    r.expect("scale_attn_by_inverse_layer_idx", (False,), "per-layer attention scaling is not modelled")
    r.expect("add_cross_attention", (False,), "cross-attention is not modelled")
    d = r.require("n_embd")
    n_positions = r.require("n_positions")
    n_ctx = r.get("n_ctx", n_positions)
    if n_ctx != n_positions:
        raise BlueprintError(f"config.json: n_ctx ({n_ctx}) differs from n_positions ({n_positions})")
    # fp16 upcasting switch: changes nothing in float32
    r.get("reorder_and_upcast_attn")
    return {
        "vocab_size": r.require("vocab_size"),
        "max_seq_len": n_positions,
        "embed_dim": d,
        "num_layers": r.require("n_layer"),
        "tie_embeddings": bool(r.get("tie_word_embeddings", True)),
        "dropout": {
            "embed": r.get("embd_pdrop", 0.0),
            "attention": r.get("attn_pdrop", 0.0),
            "residual": r.get("resid_pdrop", 0.0),
        },
        "init": {"std": r.get("initializer_range", 0.02), "scaled_residual": True},
        "positional": {"kind": "learned"},
        "norm": {"kind": "layernorm", "norm_eps": r.get("layer_norm_epsilon", 1e-5)},
        "final_norm": True,
        "block": {
            "norm_placement": "pre",
            "attention": {"num_heads": r.heads("n_embd", "n_head"), "causal": True, "qkv_bias": True, "out_bias": True},
            "ffn": {
                "kind": "mlp",
                "activation": activation(r, "activation_function", "gelu_new"),
                "hidden_dim": r.get("n_inner", 4 * d),
                "bias": True,
            },
        },
        "head": {"kind": "causal_lm"},
        "_tokenizer": token_ids(r),
    }


def detect(spec: "ModelSpec") -> str | None:
    b = spec.block
    if (spec.is_decoder and spec.positional.kind == "learned" and spec.norm.kind == "layernorm"
            and b.ffn.kind == "mlp" and b.attention.kv_heads == b.attention.num_heads  # MQA: gpt_bigcode.py
            and b.attention.qkv_bias  # without: gpt_neo.py
            and spec.positional.offset == 0):  # an offset table: opt.py
        return "gpt2"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a, f = spec.block.attention, spec.block.ffn
    return {
        "architectures": ["GPT2LMHeadModel"], "vocab_size": spec.vocab_size,
        "n_positions": spec.max_seq_len, "n_embd": spec.embed_dim, "n_layer": spec.num_layers,
        "n_head": a.num_heads, "n_inner": f.hidden_dim, "activation_function": TO_HF_ACTIVATION[f.activation],
        "layer_norm_epsilon": spec.norm.norm_eps, "embd_pdrop": spec.dropout.embed,
        "attn_pdrop": spec.dropout.attention, "resid_pdrop": spec.dropout.residual,
        "initializer_range": spec.init.std, "tie_word_embeddings": spec.tie_embeddings,
        "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
    }


WEIGHTS = WeightMap(
    prefix="transformer.",
    rules=(
        Rule("wte.weight", "embed.tokens.weight"),
        Rule("wpe.weight", "embed.positions.weight"),
        Rule("h.{i}.ln_1.{part}", "layers.{i}.attn_norm.{part}"),
        Rule("h.{i}.attn.c_attn.{part}", "layers.{i}.attn.{n}_proj.{part}", "qkv_conv1d"),
        Rule("h.{i}.attn.c_proj.weight", "layers.{i}.attn.o_proj.weight", "transpose"),
        Rule("h.{i}.attn.c_proj.bias", "layers.{i}.attn.o_proj.bias"),
        Rule("h.{i}.ln_2.{part}", "layers.{i}.ffn_norm.{part}"),
        Rule("h.{i}.mlp.c_fc.weight", "layers.{i}.ffn.up_proj.weight", "transpose"),
        Rule("h.{i}.mlp.c_fc.bias", "layers.{i}.ffn.up_proj.bias"),
        Rule("h.{i}.mlp.c_proj.weight", "layers.{i}.ffn.down_proj.weight", "transpose"),
        Rule("h.{i}.mlp.c_proj.bias", "layers.{i}.ffn.down_proj.bias"),
        Rule("ln_f.{part}", "final_norm.{part}"),
        Rule("lm_head.weight", "head.proj.weight", base=False),
    ),
    unused=(Unused("h.{i}.attn.{x:bias|masked_bias}", buffer),),
    tied_head="head.proj.weight",
)

FAMILY = Family(
    name="gpt2", model_types=("gpt2",), to_spec=to_spec, detect=detect, to_config=to_config, weights=WEIGHTS,
    # GPT2DoubleHeadsModel's multiple-choice head only
    irrelevant=frozenset({"summary_type", "summary_use_proj", "summary_activation", "summary_proj_to_labels",
                          "summary_first_dropout"}),
)
