"""GPT-BigCode (``model_type: gpt_bigcode``; SantaCoder, StarCoder 1): GPT-2's layout (learned
positions, pre-LayerNorm, a biased GELU MLP, tied head) with multi-query attention and
``nn.Linear`` weights. ``c_attn`` fuses q, k, v of unequal sizes: [q (H*hd); k (hd); v (hd)] with
``multi_query``, [H, 3, hd] per head without; both are the ``qkv_grouped`` layout (G = kv heads)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.errors import BlueprintError
from blueprint.families import Family
from blueprint.families.starcoder2 import _TO_HF_ACTIVATION
from blueprint.families.weightmap import Rule, Unused, WeightMap, buffer
from blueprint.hf.common import activation, token_ids
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    r.expect("scale_attn_weights", (True,), "attention without 1/sqrt(head_dim) scaling is not modelled")
    r.expect("add_cross_attention", (False,), "cross-attention is not modelled")
    # fp16/bf16 softmax upcasts: no effect on the float32 function
    r.get("attention_softmax_in_fp32")
    r.get("scale_attention_softmax_in_fp32")
    d = r.require("n_embd")
    heads = r.heads("n_embd", "n_head")
    kv_heads = 1 if r.get("multi_query", True) else heads
    written = r.get("num_key_value_heads", kv_heads)
    if written != kv_heads:
        raise BlueprintError(f"config.json: num_key_value_heads ({written}) contradicts multi_query "
                             f"({kv_heads} key/value heads)", hint="GPT-BigCode has 1 (multi_query) or n_head")
    return {
        "vocab_size": r.require("vocab_size"),
        "max_seq_len": r.require("n_positions"),
        "embed_dim": d,
        "num_layers": r.require("n_layer"),
        "tie_embeddings": bool(r.get("tie_word_embeddings", True)),
        "dropout": {"embed": r.get("embd_pdrop", 0.0), "attention": r.get("attn_pdrop", 0.0),
                    "residual": r.get("resid_pdrop", 0.0)},
        "init": {"std": r.get("initializer_range", 0.02), "scaled_residual": True},
        "positional": {"kind": "learned"},
        "norm": {"kind": "layernorm", "norm_eps": r.get("layer_norm_epsilon", 1e-5)},
        "final_norm": True,
        "block": {
            "norm_placement": "pre",
            "attention": {"num_heads": heads, "num_kv_heads": kv_heads, "causal": True,
                          "qkv_bias": True, "out_bias": True},
            "ffn": {"kind": "mlp", "activation": activation(r, "activation_function", "gelu_pytorch_tanh"),
                    "hidden_dim": r.get("n_inner") or 4 * d, "bias": True},
        },
        "head": {"kind": "causal_lm"},
        "_tokenizer": token_ids(r),
    }


def detect(spec: "ModelSpec") -> str | None:
    """GPT-2's layout with one key/value head (GPT-2 claims the multi-head ones)."""
    a = spec.block.attention
    if (spec.is_decoder and spec.positional.kind == "learned" and spec.norm.kind == "layernorm"
            and spec.block.ffn.kind == "mlp" and a.kv_heads == 1 < a.num_heads):
        return "gpt_bigcode"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a, f = spec.block.attention, spec.block.ffn
    return {
        "architectures": ["GPTBigCodeForCausalLM"], "vocab_size": spec.vocab_size,
        "n_positions": spec.max_seq_len, "n_embd": spec.embed_dim, "n_layer": spec.num_layers,
        "n_head": a.num_heads, "multi_query": a.kv_heads == 1, "n_inner": f.hidden_dim,
        "activation_function": _TO_HF_ACTIVATION[f.activation], "layer_norm_epsilon": spec.norm.norm_eps,
        "embd_pdrop": spec.dropout.embed, "attn_pdrop": spec.dropout.attention,
        "resid_pdrop": spec.dropout.residual, "initializer_range": spec.init.std,
        "tie_word_embeddings": spec.tie_embeddings, "scale_attn_weights": True,
    }


WEIGHTS = WeightMap(
    prefix="transformer.",
    rules=(
        Rule("wte.weight", "embed.tokens.weight"),
        Rule("wpe.weight", "embed.positions.weight"),
        Rule("h.{i}.ln_1.{part}", "layers.{i}.attn_norm.{part}"),
        Rule("h.{i}.attn.c_attn.{part}", "layers.{i}.attn.{n}_proj.{part}", "qkv_grouped"),
        Rule("h.{i}.attn.c_proj.{part}", "layers.{i}.attn.o_proj.{part}"),
        Rule("h.{i}.ln_2.{part}", "layers.{i}.ffn_norm.{part}"),
        Rule("h.{i}.mlp.c_fc.{part}", "layers.{i}.ffn.up_proj.{part}"),
        Rule("h.{i}.mlp.c_proj.{part}", "layers.{i}.ffn.down_proj.{part}"),
        Rule("ln_f.{part}", "final_norm.{part}"),
        Rule("lm_head.weight", "head.proj.weight", base=False),
    ),
    unused=(Unused("h.{i}.attn.{x:bias|masked_bias}", buffer),),
    tied_head="head.proj.weight",
)

FAMILY = Family(name="gpt_bigcode", model_types=("gpt_bigcode",), to_spec=to_spec, detect=detect,
                to_config=to_config, weights=WEIGHTS)
