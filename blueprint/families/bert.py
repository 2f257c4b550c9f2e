"""BERT (``model_type: bert``): learned absolute positions and token types, post-LayerNorm,
a GELU MLP, biases everywhere. The head comes from ``architectures`` (``...ForMaskedLM`` ->
masked_lm, ``...ForSequenceClassification`` -> classification, a bare model -> embeddings with
the pooler) unless the caller passes one (a sentence-transformers folder: mean pooling)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.families import Family
from blueprint.families.weightmap import Rule, Unused, WeightMap, buffer, unless_masked_lm
from blueprint.hf.common import TO_HF_ACTIVATION, activation, architecture, num_labels, token_ids
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    r.expect("position_embedding_type", ("absolute",), "relative position variants are not modelled")
    r.expect("is_decoder", (False,), "BERT as a decoder is not modelled")
    r.expect("add_cross_attention", (False,), "cross-attention is not modelled")
    r.get("classifier_dropout")  # dropout before a classifier: inactive at inference
    act = activation(r, "hidden_act", "gelu")
    arch = architecture(r)
    if head is None:
        if arch.endswith("ForMaskedLM") or arch.endswith("ForPreTraining"):
            head = {"kind": "masked_lm", "activation": act}
        elif arch.endswith("ForSequenceClassification"):
            head = {"kind": "classification", "num_labels": num_labels(r), "pooling": "cls", "pooler": "dense_tanh"}
        else:
            head = {"kind": "embeddings", "pooling": "cls", "pooler": "dense_tanh"}
    return {
        "vocab_size": r.require("vocab_size"),
        "max_seq_len": r.require("max_position_embeddings"),
        "embed_dim": r.require("hidden_size"),
        "num_layers": r.require("num_hidden_layers"),
        "type_vocab_size": r.get("type_vocab_size", 2),
        "tie_embeddings": bool(r.get("tie_word_embeddings", True)) and head["kind"] == "masked_lm",
        "dropout": {
            "embed": r.get("hidden_dropout_prob", 0.1),
            "attention": r.get("attention_probs_dropout_prob", 0.1),
            "residual": r.get("hidden_dropout_prob", 0.1),
        },
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "learned"},
        "norm": {"kind": "layernorm", "norm_eps": r.get("layer_norm_eps", 1e-12)},
        "embed_norm": True,
        "final_norm": False,
        "block": {
            "norm_placement": "post",
            "attention": {"num_heads": r.heads("hidden_size", "num_attention_heads"), "causal": False, "qkv_bias": True, "out_bias": True},
            "ffn": {"kind": "mlp", "activation": act, "hidden_dim": r.require("intermediate_size"), "bias": True},
        },
        "head": head,
        "_tokenizer": token_ids(r),
    }




def detect(spec: "ModelSpec") -> str | None:
    if (not spec.is_decoder and spec.positional.kind == "learned" and spec.block.norm_placement == "post"
            and spec.type_vocab_size and spec.positional.offset == 0):
        return "bert"  # without token types: distilbert.py; an offset table: roberta.py
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a, f, head = spec.block.attention, spec.block.ffn, spec.head
    arch = {"masked_lm": "BertForMaskedLM", "classification": "BertForSequenceClassification"}.get(head.kind, "BertModel")
    config = {
        "architectures": [arch], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "num_hidden_layers": spec.num_layers, "num_attention_heads": a.num_heads,
        "intermediate_size": f.hidden_dim, "hidden_act": TO_HF_ACTIVATION[f.activation],
        "max_position_embeddings": spec.max_seq_len, "type_vocab_size": spec.type_vocab_size,
        "layer_norm_eps": spec.norm.norm_eps, "hidden_dropout_prob": spec.dropout.residual,
        "attention_probs_dropout_prob": spec.dropout.attention, "initializer_range": spec.init.std,
        "position_embedding_type": "absolute", "tie_word_embeddings": spec.tie_embeddings or head.kind != "masked_lm",
    }
    if head.kind == "classification":
        config["id2label"] = {str(i): f"LABEL_{i}" for i in range(head.num_labels)}
    return config




def _pooler_unused(spec: "ModelSpec") -> str | None:
    head = spec.head
    if getattr(head, "pooler", "none") == "dense_tanh":
        return None
    pooling = getattr(head, "pooling", None)
    how = f"pools by {pooling} without a pooler" if pooling else "has no pooler"
    return f"the pooler (dense + tanh); the spec's {head.kind} head {how}"


def _nsp_unused(_spec: "ModelSpec") -> str:
    return "the next-sentence-prediction head, which the spec language has no head for"


def _export_prefix(spec: "ModelSpec") -> str:
    """BertForMaskedLM / ForSequenceClassification nest the encoder as ``bert.``; BertModel does not."""
    return "bert." if spec.head.kind in ("masked_lm", "classification") else ""


_LAYER = "encoder.layer.{i}."
WEIGHTS = WeightMap(
    prefix="bert.",
    export_prefix=_export_prefix,
    rules=(
        Rule("embeddings.word_embeddings.weight", "embed.tokens.weight"),
        Rule("embeddings.position_embeddings.weight", "embed.positions.weight"),
        Rule("embeddings.token_type_embeddings.weight", "embed.token_types.weight"),
        Rule("embeddings.LayerNorm.{part}", "embed.norm.{part}"),
        Rule(_LAYER + "attention.self.query.{part}", "layers.{i}.attn.q_proj.{part}"),
        Rule(_LAYER + "attention.self.key.{part}", "layers.{i}.attn.k_proj.{part}"),
        Rule(_LAYER + "attention.self.value.{part}", "layers.{i}.attn.v_proj.{part}"),
        Rule(_LAYER + "attention.output.dense.{part}", "layers.{i}.attn.o_proj.{part}"),
        Rule(_LAYER + "attention.output.LayerNorm.{part}", "layers.{i}.attn_norm.{part}"),
        Rule(_LAYER + "intermediate.dense.{part}", "layers.{i}.ffn.up_proj.{part}"),
        Rule(_LAYER + "output.dense.{part}", "layers.{i}.ffn.down_proj.{part}"),
        Rule(_LAYER + "output.LayerNorm.{part}", "layers.{i}.ffn_norm.{part}"),
        Rule("pooler.dense.{part}", "head.pooler.{part}"),
        Rule("cls.predictions.transform.dense.{part}", "head.dense.{part}", base=False),
        Rule("cls.predictions.transform.LayerNorm.{part}", "head.norm.{part}", base=False),
        Rule("cls.predictions.decoder.weight", "head.decoder.weight", base=False),
        Rule("cls.predictions.bias", "head.decoder.bias", base=False, aliases=("cls.predictions.decoder.bias",)),
        Rule("classifier.{part}", "head.classifier.{part}", base=False),
    ),
    unused=(
        Unused("embeddings.position_ids", buffer),
        Unused("pooler.dense.{part}", _pooler_unused),
        Unused("cls.predictions.{*}", unless_masked_lm),
        Unused("cls.seq_relationship.{*}", _nsp_unused),
    ),
    tied_head="head.decoder.weight",
)

FAMILY = Family(name="bert", model_types=("bert",), to_spec=to_spec, detect=detect, to_config=to_config,
                weights=WEIGHTS)
