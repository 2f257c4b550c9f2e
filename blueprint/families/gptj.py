"""GPT-J (``model_type: gptj``; GPT-J-6B): a parallel block fed by ONE LayerNorm
(``residual: parallel_shared_norm``), interleaved ("rotate every two") partial RoPE over
``rotary_dim`` features, no attention biases, a GELU(tanh) MLP with biases and an LM head with
a bias."""

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
    d = r.require("n_embd")
    heads = r.heads("n_embd", "n_head")
    head_dim = d // heads
    rotary = r.get("rotary_dim") or head_dim
    if rotary % 2 or not 0 < rotary <= head_dim:
        raise BlueprintError(f"config.json: 'rotary_dim' = {rotary} must be an even number of features "
                             f"in 1..{head_dim} (head_dim)")
    return {
        "vocab_size": r.require("vocab_size"), "max_seq_len": r.require("n_positions"), "embed_dim": d,
        "num_layers": r.require("n_layer"), "tie_embeddings": bool(r.get("tie_word_embeddings", False)),
        "dropout": {"embed": r.get("embd_pdrop", 0.0), "attention": r.get("attn_pdrop", 0.0),
                    "residual": r.get("resid_pdrop", 0.0)},
        "init": {"std": r.get("initializer_range", 0.02)},
        # GPT-J's sin/cos table is built with base 10000; the config has no field for it
        "positional": {"kind": "rope", "rope_base": 10000.0,
                       "rotary_fraction": rotary / head_dim, "layout": "interleaved"},
        "norm": {"kind": "layernorm", "norm_eps": r.get("layer_norm_epsilon", 1e-5)},
        "final_norm": True,
        "block": {
            "norm_placement": "pre",
            "residual": "parallel_shared_norm",
            "attention": {"num_heads": heads, "head_dim": head_dim, "causal": True, "qkv_bias": False,
                          "out_bias": False},
            "ffn": {"kind": "mlp", "activation": activation(r, "activation_function", "gelu_new"),
                    "hidden_dim": r.get("n_inner") or 4 * d, "bias": True},
        },
        "head": {"kind": "causal_lm", "bias": True},
        "_tokenizer": token_ids(r),
    }


def detect(spec: "ModelSpec") -> str | None:
    pos = spec.positional
    if (spec.is_decoder and pos.kind == "rope" and pos.layout == "interleaved"
            and spec.norm.kind == "layernorm" and spec.block.ffn.kind == "mlp"):
        return "gptj"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a, f = spec.block.attention, spec.block.ffn
    return {
        "architectures": ["GPTJForCausalLM"], "vocab_size": spec.vocab_size, "n_positions": spec.max_seq_len,
        "n_embd": spec.embed_dim, "n_layer": spec.num_layers, "n_head": a.num_heads,
        "rotary_dim": round(a.head_dim * spec.positional.rotary_fraction), "n_inner": f.hidden_dim,
        "activation_function": TO_HF_ACTIVATION[f.activation], "layer_norm_epsilon": spec.norm.norm_eps,
        "embd_pdrop": spec.dropout.embed, "attn_pdrop": spec.dropout.attention,
        "resid_pdrop": spec.dropout.residual, "initializer_range": spec.init.std,
        "tie_word_embeddings": spec.tie_embeddings,
    }


WEIGHTS = WeightMap(
    prefix="transformer.",
    rules=(
        Rule("wte.weight", "embed.tokens.weight"),
        Rule("h.{i}.ln_1.{part}", "layers.{i}.attn_norm.{part}"),
        Rule("h.{i}.attn.{x:q|k|v}_proj.weight", "layers.{i}.attn.{x}_proj.weight"),
        Rule("h.{i}.attn.out_proj.weight", "layers.{i}.attn.o_proj.weight"),
        Rule("h.{i}.mlp.fc_in.{part}", "layers.{i}.ffn.up_proj.{part}"),
        Rule("h.{i}.mlp.fc_out.{part}", "layers.{i}.ffn.down_proj.{part}"),
        Rule("ln_f.{part}", "final_norm.{part}"),
        Rule("lm_head.{part}", "head.proj.{part}", base=False),
    ),
    unused=(Unused("h.{i}.attn.{x:bias|masked_bias}", buffer), Unused("h.{i}.attn.embed_positions", buffer)),
    tied_head="head.proj.weight",
)

FAMILY = Family(name="gptj", model_types=("gptj",), to_spec=to_spec, detect=detect, to_config=to_config,
                weights=WEIGHTS)
