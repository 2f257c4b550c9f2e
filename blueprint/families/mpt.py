"""MPT (``model_type: mpt``; MosaicML MPT-7B/30B): ALiBi instead of positions, pre-LayerNorm
without bias, no linear biases, q/k/v fused in ``Wqkv`` ([q; k; v] rows), a GELU MLP of 4x width,
tied head. The attention settings live in a nested ``attn_config``, read field by field.

What transformers' ``MptForCausalLM`` computes is the reference: it applies ``attn_pdrop`` to the
attention probabilities and after both sublayers, and ignores ``emb_pdrop``, ``resid_pdrop``
and ``learned_pos_emb``. Refused, naming the mechanism: q/k LayerNorm (``qk_ln``), ``clip_qkv``,
prefix-LM / sequence-id masking, multi-query attention, a logit scale, ALiBi other than the
standard ``alibi_bias_max`` 8, ``embedding_fraction`` < 1."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.errors import BlueprintError
from blueprint.families import Family
from blueprint.families.weightmap import Rule, WeightMap
from blueprint.hf.common import token_ids
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec

_ATTN_DEFAULTS = {"attn_type": "multihead_attention", "attn_pdrop": 0, "attn_impl": "torch", "clip_qkv": None,
                  "softmax_scale": None, "prefix_lm": False, "qk_ln": False, "attn_uses_sequence_id": False,
                  "alibi": True, "alibi_bias_max": 8}


def _attn_config(r: ConfigReader) -> tuple[float, float | None]:
    """(attn_pdrop, softmax_scale) from ``attn_config``; every other field checked or refused."""
    nested = r.get("attn_config", {}) or {}
    if not isinstance(nested, dict):
        raise BlueprintError(f"config.json: 'attn_config' = {nested!r} must be a mapping")
    a = ConfigReader(nested, "mpt (attn_config)")
    a.expect("attn_type", ("multihead_attention",), "transformers' MPT computes multi-head attention only")
    a.get("attn_impl")  # kernel choice: same function
    # transformers writes the nested config with a whole config's bookkeeping (IRRELEVANT) and this
    a.expect("is_encoder_decoder", (False,), "MPT is a decoder")
    a.expect("clip_qkv", (None,), "clipping q/k/v activations is not modelled")
    a.expect("qk_ln", (False,), "MPT's q/k LayerNorm is not modelled")
    a.expect("prefix_lm", (False,), "prefix-LM masking is not modelled")
    a.expect("attn_uses_sequence_id", (False,), "sequence-id masking is not modelled")
    a.expect("alibi", (True,), "transformers' MPT always adds ALiBi")
    a.expect("alibi_bias_max", (8,), "blueprint's ALiBi has the standard slopes (alibi_bias_max 8)")
    dropout, scale = a.get("attn_pdrop", 0.0), a.get("softmax_scale")
    a.finish()
    return float(dropout), scale


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    r.expect("no_bias", (True,), "transformers' MPT has no linear biases")
    r.expect("expansion_ratio", (4,), "transformers' MPT sizes its MLP 4 x d_model")
    r.expect("logit_scale", (None,), "a logit scale is not applied by transformers' MPT")
    r.expect("embedding_fraction", (1.0, 1), "embedding_fraction < 1 is not modelled")
    r.expect("norm_type", ("low_precision_layernorm", "layernorm"), "MPT's other norms are not modelled")
    # not used by transformers' MptForCausalLM (the ALiBi model has no position table or these dropouts)
    r.get("learned_pos_emb"), r.get("emb_pdrop"), r.get("resid_pdrop"), r.get("init_device")
    dropout, scale = _attn_config(r)
    d = r.require("d_model")
    attention: dict[str, Any] = {"num_heads": r.heads("d_model", "n_heads"), "causal": True,
                                 "qkv_bias": False, "out_bias": False}
    if scale is not None:
        attention["softmax_scale"] = float(scale)
    return {
        "vocab_size": r.require("vocab_size"),
        "max_seq_len": r.require("max_seq_len"),
        "embed_dim": d,
        "num_layers": r.require("n_layers"),
        "tie_embeddings": bool(r.get("tie_word_embeddings", True)),
        "dropout": {"attention": dropout, "residual": dropout},
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "alibi"},
        "norm": {"kind": "layernorm", "norm_eps": r.get("layer_norm_epsilon", 1e-5), "bias": False},
        "final_norm": True,
        "block": {
            "norm_placement": "pre",
            "attention": attention,
            "ffn": {"kind": "mlp", "activation": "gelu", "hidden_dim": 4 * d, "bias": False},
        },
        "head": {"kind": "causal_lm"},
        "_tokenizer": token_ids(r),
    }


def detect(spec: "ModelSpec") -> str | None:
    """An ALiBi decoder without a norm after the embeddings (BLOOM has one)."""
    if spec.is_decoder and spec.positional.kind == "alibi" and not spec.embed_norm:
        return "mpt"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a = spec.block.attention
    p = spec.dropout.attention
    # transformers 5.24 types attn_pdrop as int (published configs write 0): a whole value goes as an int
    attn: dict[str, Any] = {**_ATTN_DEFAULTS, "attn_pdrop": int(p) if p == int(p) else p, "softmax_scale": a.softmax_scale}
    return {
        "architectures": ["MptForCausalLM"], "vocab_size": spec.vocab_size, "d_model": spec.embed_dim,
        "n_layers": spec.num_layers, "n_heads": a.num_heads, "expansion_ratio": 4,
        "max_seq_len": spec.max_seq_len, "layer_norm_epsilon": spec.norm.norm_eps, "no_bias": True,
        "attn_config": attn, "tie_word_embeddings": spec.tie_embeddings, "initializer_range": spec.init.std,
    }


WEIGHTS = WeightMap(
    prefix="transformer.",
    rules=(
        Rule("wte.weight", "embed.tokens.weight"),
        Rule("blocks.{i}.norm_1.weight", "layers.{i}.attn_norm.weight"),
        Rule("blocks.{i}.attn.Wqkv.weight", "layers.{i}.attn.{n}_proj.weight", "qkv"),
        Rule("blocks.{i}.attn.out_proj.weight", "layers.{i}.attn.o_proj.weight"),
        Rule("blocks.{i}.norm_2.weight", "layers.{i}.ffn_norm.weight"),
        Rule("blocks.{i}.ffn.{x:up|down}_proj.weight", "layers.{i}.ffn.{x}_proj.weight"),
        Rule("norm_f.weight", "final_norm.weight"),
        Rule("lm_head.weight", "head.proj.weight", base=False),
    ),
    tied_head="head.proj.weight",
)

FAMILY = Family(name="mpt", model_types=("mpt",), to_spec=to_spec, detect=detect, to_config=to_config,
                weights=WEIGHTS)
