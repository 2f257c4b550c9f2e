"""NomicBERT (``model_type: nomic_bert``; nomic-embed-text): a BERT-style post-LayerNorm encoder
with token types and an embedding LayerNorm, but RoPE instead of a position table, attention
and SwiGLU FFN without biases. Heads as BERT's: ``...ForMaskedLM`` -> masked_lm (dense ->
activation -> LayerNorm -> tied decoder with bias), ``...ForSequenceClassification`` ->
classification through the dense+tanh pooler, the bare model (no pooler) -> embeddings pooled
at [CLS] unless the caller (a sentence-transformers folder) imposes its head."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.errors import BlueprintError
from blueprint.families import Family
from blueprint.families.weightmap import Rule, Unused, WeightMap, buffer, unless_masked_lm
from blueprint.hf.common import TO_HF_ACTIVATION, activation, architecture, num_labels, rope, token_ids
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    r.get("classifier_dropout")  # dropout before a classifier: inactive at inference
    act = activation(r, "hidden_act", "silu")
    if act != "silu":
        raise BlueprintError(f"config.json: 'hidden_act' = {r.get('hidden_act')!r}: NomicBERT's gated FFN is "
                             "imported as SwiGLU, which needs silu")
    base, fraction = rope(r, default_base=1000.0)
    if fraction != 1.0:
        raise BlueprintError(f"config.json: partial rotary ({fraction}) is not used by nomic_bert")
    arch = architecture(r)
    if head is None:
        if arch.endswith("ForMaskedLM"):
            head = {"kind": "masked_lm", "activation": act}
        elif arch.endswith("ForSequenceClassification"):
            head = {"kind": "classification", "num_labels": num_labels(r), "pooling": "cls", "pooler": "dense_tanh"}
        else:
            head = {"kind": "embeddings", "pooling": "cls"}
    d = r.require("hidden_size")
    heads = r.require("num_attention_heads")
    return {
        "vocab_size": r.require("vocab_size"),
        "max_seq_len": r.require("max_position_embeddings"),
        "embed_dim": d,
        "num_layers": r.require("num_hidden_layers"),
        "type_vocab_size": r.get("type_vocab_size", 2),
        "tie_embeddings": bool(r.get("tie_word_embeddings", True)) and head["kind"] == "masked_lm",
        "dropout": {"embed": r.get("hidden_dropout_prob", 0.0), "attention": r.get("attention_probs_dropout_prob", 0.0),
                    "residual": r.get("hidden_dropout_prob", 0.0)},
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "rope", "rope_base": base},
        "norm": {"kind": "layernorm", "norm_eps": r.get("layer_norm_eps", 1e-12)},
        "embed_norm": True,
        "final_norm": False,
        "block": {
            "norm_placement": "post",
            "attention": {"num_heads": heads, "head_dim": r.get("head_dim", d // heads), "causal": False,
                          "qkv_bias": False, "out_bias": False},
            "ffn": {"kind": "swiglu", "hidden_dim": r.require("intermediate_size"), "bias": False},
        },
        "head": head,
        "_tokenizer": token_ids(r),
    }


def detect(spec: "ModelSpec") -> str | None:
    """A post-norm RoPE encoder (ModernBERT's is pre-norm)."""
    if not spec.is_decoder and spec.positional.kind == "rope" and spec.block.norm_placement == "post":
        return "nomic_bert"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a, f, head = spec.block.attention, spec.block.ffn, spec.head
    arch = {"masked_lm": "NomicBertForMaskedLM",
            "classification": "NomicBertForSequenceClassification"}.get(head.kind, "NomicBertModel")
    config = {
        "architectures": [arch], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "num_hidden_layers": spec.num_layers, "num_attention_heads": a.num_heads, "head_dim": a.head_dim,
        "intermediate_size": f.hidden_dim, "hidden_act": TO_HF_ACTIVATION["silu"],
        "max_position_embeddings": spec.max_seq_len, "type_vocab_size": spec.type_vocab_size,
        "layer_norm_eps": spec.norm.norm_eps, "hidden_dropout_prob": spec.dropout.residual,
        "attention_probs_dropout_prob": spec.dropout.attention, "initializer_range": spec.init.std,
        "rope_parameters": {"rope_theta": spec.positional.rope_base, "rope_type": "default"},
        "tie_word_embeddings": spec.tie_embeddings or head.kind != "masked_lm",
    }
    if head.kind == "classification":
        config["id2label"] = {str(i): f"LABEL_{i}" for i in range(head.num_labels)}
    return config


def _export_prefix(spec: "ModelSpec") -> str:
    """The task classes nest the encoder as ``nomic_bert.``; NomicBertModel does not."""
    return "nomic_bert." if spec.head.kind in ("masked_lm", "classification") else ""


# The names transformers' save_pretrained writes: the original nomic checkpoints' (transformers
# renames them on loading, conversion_mapping "nomic_bert"); its in-memory names are accepted too.
_LAYER = "encoder.layers.{i}."
WEIGHTS = WeightMap(
    prefix="nomic_bert.",
    export_prefix=_export_prefix,
    rules=(
        Rule("embeddings.word_embeddings.weight", "embed.tokens.weight"),
        Rule("embeddings.token_type_embeddings.weight", "embed.token_types.weight"),
        Rule("emb_ln.{part}", "embed.norm.{part}", aliases=("embeddings.LayerNorm.{part}",)),
        Rule(_LAYER + "attn.Wqkv.weight", "layers.{i}.attn.{n}_proj.weight", "qkv"),
        Rule("layers.{i}.self_attn.{x:q|k|v}_proj.weight", "layers.{i}.attn.{x}_proj.weight"),
        Rule(_LAYER + "attn.out_proj.weight", "layers.{i}.attn.o_proj.weight",
             aliases=("layers.{i}.self_attn.o_proj.weight",)),
        Rule(_LAYER + "norm1.{part}", "layers.{i}.attn_norm.{part}",
             aliases=("layers.{i}.post_attention_layernorm.{part}",)),
        Rule(_LAYER + "mlp.fc11.weight", "layers.{i}.ffn.up_proj.weight", aliases=("layers.{i}.mlp.up_proj.weight",)),
        Rule(_LAYER + "mlp.fc12.weight", "layers.{i}.ffn.gate_proj.weight",
             aliases=("layers.{i}.mlp.gate_proj.weight",)),
        Rule(_LAYER + "mlp.fc2.weight", "layers.{i}.ffn.down_proj.weight", aliases=("layers.{i}.mlp.down_proj.weight",)),
        Rule(_LAYER + "norm2.{part}", "layers.{i}.ffn_norm.{part}", aliases=("layers.{i}.post_mlp_layernorm.{part}",)),
        Rule("pooler.dense.{part}", "head.pooler.{part}"),
        Rule("cls.predictions.transform.dense.{part}", "head.dense.{part}", base=False),
        Rule("cls.predictions.transform.layer_norm.{part}", "head.norm.{part}", base=False),
        Rule("cls.predictions.decoder.weight", "head.decoder.weight", base=False),
        Rule("cls.predictions.bias", "head.decoder.bias", base=False, aliases=("cls.predictions.decoder.bias",)),
        Rule("classifier.{part}", "head.classifier.{part}", base=False),
    ),
    unused=(
        Unused("embeddings.{x:position_ids|token_type_ids}", buffer),
        Unused("cls.predictions.{*}", unless_masked_lm),
    ),
    tied_head="head.decoder.weight",
)

FAMILY = Family(name="nomic_bert", model_types=("nomic_bert",), to_spec=to_spec, detect=detect,
                to_config=to_config, weights=WEIGHTS)
