"""GPT-NeoX / Pythia (``model_type: gpt_neox``): parallel residual with two norms (or
sequential), partial rotary, biases everywhere, q/k/v fused per head ([H, 3, hd] rows).

``parallel_rope_body`` is the skeleton Phi shares (``blueprint/families/phi.py`` imports it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.families import Family
from blueprint.families.weightmap import Rule, Unused, WeightMap, buffer
from blueprint.hf.common import TO_HF_ACTIVATION, activation, rope, rope_parameters, rotary_fraction, sizes, token_ids
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec


def parallel_rope_body(r: ConfigReader, d: int, *, residual: str, attention: dict[str, Any],
                       dropout: dict[str, Any], activation_default: str, head: dict[str, Any]) -> dict[str, Any]:
    """LayerNorm, (partial) RoPE, a biased GELU MLP: the spec body GPT-NeoX and Phi share."""
    base, fraction = rope(r)
    rotary_fraction(fraction, attention["head_dim"])
    return {
        **sizes(r, d),
        "dropout": dropout,
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "rope", "rope_base": base, "rotary_fraction": fraction},
        "norm": {"kind": "layernorm", "norm_eps": r.get("layer_norm_eps", 1e-5)},
        "final_norm": True,
        "block": {
            "norm_placement": "pre",
            "residual": residual,
            "attention": {**attention, "causal": True, "qkv_bias": True, "out_bias": True},
            "ffn": {"kind": "mlp", "activation": activation(r, "hidden_act", activation_default),
                    "hidden_dim": r.require("intermediate_size"), "bias": True},
        },
        "head": head,
        "_tokenizer": token_ids(r),
    }


def parallel_rope_layout(spec: "ModelSpec") -> bool:
    """A decoder with LayerNorm, RoPE and a plain MLP (GPT-NeoX or Phi; the LM-head bias tells)."""
    return (spec.is_decoder and spec.positional.kind == "rope" and spec.norm.kind == "layernorm"
            and spec.norm.weight_offset == 0 and spec.block.ffn.kind == "mlp"  # 1: Nemotron's
            and spec.positional.layout == "half_split")  # interleaved: gptj.py


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    d = r.require("hidden_size")
    heads = r.heads("hidden_size", "num_attention_heads")
    r.expect("attention_bias", (True,), "GPT-NeoX without attention bias is not modelled")
    return parallel_rope_body(
        r, d, residual="parallel" if r.get("use_parallel_residual", True) else "sequential",
        attention={"num_heads": heads, "head_dim": d // heads},
        dropout={"attention": r.get("attention_dropout", 0.0), "residual": r.get("hidden_dropout", 0.0)},
        activation_default="gelu", head={"kind": "causal_lm"})


def neox_layout(spec: "ModelSpec") -> bool:
    """GPT-NeoX's own layer: biases on every projection, one key/value head per query head, a
    norm per sublayer, no q/k norm (Falcon claims the other LayerNorm + RoPE + MLP decoders,
    Persimmon those with q/k norms, Phi those with an LM-head bias)."""
    b = spec.block
    return (b.attention.qkv_bias and b.attention.out_bias and b.ffn.bias and not b.attention.qk_norm
            and b.attention.kv_heads == b.attention.num_heads and b.residual != "parallel_shared_norm")


def starcoder2_layout(spec: "ModelSpec") -> bool:
    """StarCoder2's layer (blueprint/families/starcoder2.py): sequential, full RoPE, a LayerNorm
    with weight and bias, one bias switch for every linear layer, no q/k norm."""
    b, a = spec.block, spec.block.attention
    return (parallel_rope_layout(spec) and b.residual == "sequential" and spec.positional.rotary_fraction == 1.0
            and not a.qk_norm  # q/k norms: Persimmon
            and spec.norm.weight and spec.norm.bias and a.qkv_bias == a.out_bias == b.ffn.bias
            and not a.qk_norm and not (spec.head.kind == "causal_lm" and spec.head.bias))


def persimmon_layout(spec: "ModelSpec") -> bool:
    """Persimmon's layer (blueprint/families/persimmon.py): sequential with a q/k LayerNorm."""
    return (parallel_rope_layout(spec) and spec.block.residual == "sequential" and spec.block.attention.qk_norm
            and not (spec.head.kind == "causal_lm" and spec.head.bias))


def sequential_elsewhere(spec: "ModelSpec") -> bool:
    """A sequential layout StarCoder2 or Persimmon claims (GPT-NeoX and Falcon leave it)."""
    return starcoder2_layout(spec) or persimmon_layout(spec)


def detect(spec: "ModelSpec") -> str | None:
    if (parallel_rope_layout(spec) and not (spec.head.kind == "causal_lm" and spec.head.bias)
            and neox_layout(spec) and not sequential_elsewhere(spec)):
        return "gpt_neox"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a, f, b = spec.block.attention, spec.block.ffn, spec.block
    return {
        "architectures": ["GPTNeoXForCausalLM"], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "intermediate_size": f.hidden_dim, "num_hidden_layers": spec.num_layers,
        "num_attention_heads": a.num_heads, "hidden_act": TO_HF_ACTIVATION[f.activation],
        "max_position_embeddings": spec.max_seq_len, "layer_norm_eps": spec.norm.norm_eps,
        "rope_parameters": rope_parameters(spec), "use_parallel_residual": b.residual == "parallel",
        "attention_bias": True, "tie_word_embeddings": spec.tie_embeddings,
        "attention_dropout": spec.dropout.attention, "hidden_dropout": spec.dropout.residual,
        "initializer_range": spec.init.std,
    }


WEIGHTS = WeightMap(
    prefix="gpt_neox.",
    rules=(
        Rule("embed_in.weight", "embed.tokens.weight"),
        Rule("layers.{i}.input_layernorm.{part}", "layers.{i}.attn_norm.{part}"),
        Rule("layers.{i}.post_attention_layernorm.{part}", "layers.{i}.ffn_norm.{part}"),
        Rule("layers.{i}.attention.query_key_value.{part}", "layers.{i}.attn.{n}_proj.{part}", "qkv_per_head"),
        Rule("layers.{i}.attention.dense.{part}", "layers.{i}.attn.o_proj.{part}"),
        Rule("layers.{i}.mlp.dense_h_to_4h.{part}", "layers.{i}.ffn.up_proj.{part}"),
        Rule("layers.{i}.mlp.dense_4h_to_h.{part}", "layers.{i}.ffn.down_proj.{part}"),
        Rule("final_layer_norm.{part}", "final_norm.{part}"),
        Rule("embed_out.weight", "head.proj.weight", base=False, aliases=("lm_head.weight",)),
    ),
    unused=(Unused("layers.{i}.attention.{x:bias|masked_bias|rotary_emb.inv_freq}", buffer),),
    tied_head="head.proj.weight",
)

FAMILY = Family(name="gpt_neox", model_types=("gpt_neox",), to_spec=to_spec, detect=detect,
                to_config=to_config, weights=WEIGHTS,
                irrelevant=frozenset({"classifier_dropout", "is_decoder"}))
