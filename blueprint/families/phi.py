"""Phi-1/1.5/2 (``model_type: phi``): a parallel block fed by ONE input LayerNorm, partial
rotary, biases everywhere, an LM head with bias, optional per-head q/k LayerNorm.

The spec's parallel block has two norms (attn_norm, ffn_norm); the ``shared_norm`` weight rule
fills both with Phi's one ``input_layernorm``, which computes the same function (and export
refuses two norms that differ)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.errors import BlueprintError
from blueprint.families import Family
from blueprint.families.gpt_neox import parallel_rope_body, parallel_rope_layout
from blueprint.families.weightmap import Rule, Unused, WeightMap, buffer
from blueprint.hf.common import TO_HF_ACTIVATION, rope_parameters
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    d = r.require("hidden_size")
    heads = r.require("num_attention_heads")
    head_dim = r.get("head_dim", d // heads)
    qk_norm = bool(r.get("qk_layernorm", False))
    if qk_norm and head_dim != d // heads:
        raise BlueprintError(f"config.json: qk_layernorm with head_dim {head_dim} != hidden_size / "
                             f"num_attention_heads ({d // heads}) is not modelled (Phi sizes those norms by the latter)")
    return parallel_rope_body(
        r, d, residual="parallel",
        attention={"num_heads": heads, "num_kv_heads": r.get("num_key_value_heads", heads),
                   "head_dim": head_dim, "qk_norm": qk_norm},
        dropout={"embed": r.get("embd_pdrop", 0.0), "attention": r.get("attention_dropout", 0.0),
                 "residual": r.get("resid_pdrop", 0.0)},
        activation_default="gelu_new", head={"kind": "causal_lm", "bias": True})


def detect(spec: "ModelSpec") -> str | None:
    if parallel_rope_layout(spec) and spec.head.kind == "causal_lm" and spec.head.bias:
        return "phi"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a, f = spec.block.attention, spec.block.ffn
    return {
        "architectures": ["PhiForCausalLM"], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "intermediate_size": f.hidden_dim, "num_hidden_layers": spec.num_layers,
        "num_attention_heads": a.num_heads, "num_key_value_heads": a.kv_heads,
        "hidden_act": TO_HF_ACTIVATION[f.activation], "max_position_embeddings": spec.max_seq_len,
        "layer_norm_eps": spec.norm.norm_eps, "rope_parameters": rope_parameters(spec),
        "qk_layernorm": a.qk_norm, "tie_word_embeddings": spec.tie_embeddings,
        "embd_pdrop": spec.dropout.embed, "resid_pdrop": spec.dropout.residual,
        "attention_dropout": spec.dropout.attention, "initializer_range": spec.init.std,
    }


WEIGHTS = WeightMap(
    prefix="model.",
    rules=(
        Rule("embed_tokens.weight", "embed.tokens.weight"),
        Rule("layers.{i}.input_layernorm.{part}", "layers.{i}.{n}.{part}", "shared_norm"),
        Rule("layers.{i}.self_attn.{x:q|k|v}_proj.{part}", "layers.{i}.attn.{x}_proj.{part}"),
        Rule("layers.{i}.self_attn.dense.{part}", "layers.{i}.attn.o_proj.{part}"),
        Rule("layers.{i}.self_attn.{x:q|k}_layernorm.{part}", "layers.{i}.attn.{x}_norm.{part}"),
        Rule("layers.{i}.mlp.fc1.{part}", "layers.{i}.ffn.up_proj.{part}"),
        Rule("layers.{i}.mlp.fc2.{part}", "layers.{i}.ffn.down_proj.{part}"),
        Rule("final_layernorm.{part}", "final_norm.{part}"),
        Rule("lm_head.{part}", "head.proj.{part}", base=False),
    ),
    unused=(Unused("layers.{i}.self_attn.rotary_emb.inv_freq", buffer),),
    tied_head="head.proj.weight",
)

FAMILY = Family(name="phi", model_types=("phi",), to_spec=to_spec, detect=detect, to_config=to_config,
                weights=WEIGHTS)
