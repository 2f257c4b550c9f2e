"""DistilBERT (``model_type: distilbert``): BERT's post-LayerNorm encoder without token types
or pooler, learned positions, LayerNorm eps fixed at 1e-12. Heads: ``DistilBertForMaskedLM``
(dense -> activation -> LayerNorm -> tied projector with bias) -> masked_lm; the bare
``DistilBertModel`` -> embeddings pooled at [CLS] (a sentence-transformers folder imposes its own).

Refused, naming the reason: ``DistilBertForSequenceClassification`` (its pre-classifier dense +
ReLU is not a head the spec language has) and ``sinusoidal_pos_embds`` (frozen position
embeddings: blueprint would train them).

Dropout: DistilBERT drops out after the FFN only; blueprint's residual dropout also follows the
attention sublayer. Inference is identical; training adds that one dropout."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.errors import BlueprintError
from blueprint.families import Family
from blueprint.families.weightmap import Rule, Unused, WeightMap, buffer, unless_masked_lm
from blueprint.hf.common import TO_HF_ACTIVATION, activation, architecture, token_ids
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec

_EPS = 1e-12  # hard-coded in every DistilBERT LayerNorm


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    r.expect("sinusoidal_pos_embds", (False,), "DistilBERT's sinusoidal position table is frozen in training; "
             "blueprint's learned positions would train it")
    act = activation(r, "activation", "gelu")
    arch = architecture(r)
    if head is None:
        if arch.endswith("ForMaskedLM"):
            head = {"kind": "masked_lm", "activation": act}
        elif arch in ("", "DistilBertModel"):
            head = {"kind": "embeddings", "pooling": "cls"}
        else:
            raise BlueprintError(f"config.json: architectures {arch!r} has a head the spec language lacks",
                                 hint="import the DistilBertForMaskedLM or DistilBertModel checkpoint")
    d = r.require("dim")
    return {
        "vocab_size": r.require("vocab_size"),
        "max_seq_len": r.require("max_position_embeddings"),
        "embed_dim": d,
        "num_layers": r.require("n_layers"),
        "tie_embeddings": bool(r.get("tie_word_embeddings", True)) and head["kind"] == "masked_lm",
        "dropout": {"embed": r.get("dropout", 0.1), "attention": r.get("attention_dropout", 0.1),
                    "residual": r.get("dropout", 0.1)},
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "learned"},
        "norm": {"kind": "layernorm", "norm_eps": _EPS},
        "embed_norm": True,
        "final_norm": False,
        "block": {
            "norm_placement": "post",
            "attention": {"num_heads": r.heads("dim", "n_heads"), "causal": False, "qkv_bias": True, "out_bias": True},
            "ffn": {"kind": "mlp", "activation": act, "hidden_dim": r.require("hidden_dim"), "bias": True},
        },
        "head": head,
        "_tokenizer": token_ids(r),
    }


def detect(spec: "ModelSpec") -> str | None:
    """BERT's layout without token types (BERT claims the ones with)."""
    if (not spec.is_decoder and spec.positional.kind == "learned" and spec.block.norm_placement == "post"
            and not spec.type_vocab_size):
        return "distilbert"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a, f, head = spec.block.attention, spec.block.ffn, spec.head
    return {
        "architectures": ["DistilBertForMaskedLM" if head.kind == "masked_lm" else "DistilBertModel"],
        "vocab_size": spec.vocab_size, "dim": spec.embed_dim, "n_layers": spec.num_layers,
        "n_heads": a.num_heads, "hidden_dim": f.hidden_dim, "activation": TO_HF_ACTIVATION[f.activation],
        "max_position_embeddings": spec.max_seq_len, "sinusoidal_pos_embds": False,
        "dropout": spec.dropout.residual, "attention_dropout": spec.dropout.attention,
        "initializer_range": spec.init.std, "tie_word_embeddings": spec.tie_embeddings or head.kind != "masked_lm",
    }


def _export_prefix(spec: "ModelSpec") -> str:
    """DistilBertForMaskedLM nests the encoder as ``distilbert.``; DistilBertModel does not."""
    return "distilbert." if spec.head.kind == "masked_lm" else ""


_LAYER = "transformer.layer.{i}."
WEIGHTS = WeightMap(
    prefix="distilbert.",
    export_prefix=_export_prefix,
    rules=(
        Rule("embeddings.word_embeddings.weight", "embed.tokens.weight"),
        Rule("embeddings.position_embeddings.weight", "embed.positions.weight"),
        Rule("embeddings.LayerNorm.{part}", "embed.norm.{part}"),
        Rule(_LAYER + "attention.{x:q|k|v}_lin.{part}", "layers.{i}.attn.{x}_proj.{part}"),
        Rule(_LAYER + "attention.out_lin.{part}", "layers.{i}.attn.o_proj.{part}"),
        Rule(_LAYER + "sa_layer_norm.{part}", "layers.{i}.attn_norm.{part}"),
        Rule(_LAYER + "ffn.lin1.{part}", "layers.{i}.ffn.up_proj.{part}"),
        Rule(_LAYER + "ffn.lin2.{part}", "layers.{i}.ffn.down_proj.{part}"),
        Rule(_LAYER + "output_layer_norm.{part}", "layers.{i}.ffn_norm.{part}"),
        Rule("vocab_transform.{part}", "head.dense.{part}", base=False),
        Rule("vocab_layer_norm.{part}", "head.norm.{part}", base=False),
        Rule("vocab_projector.{part}", "head.decoder.{part}", base=False),
    ),
    unused=(
        Unused("embeddings.position_ids", buffer),
        Unused("vocab_{*}", unless_masked_lm),
    ),
    tied_head="head.decoder.weight",
)

FAMILY = Family(name="distilbert", model_types=("distilbert",), to_spec=to_spec, detect=detect,
                to_config=to_config, weights=WEIGHTS,
                # dropouts of the question-answering and classification heads, which are not imported
                irrelevant=frozenset({"qa_dropout", "seq_classif_dropout"}))
