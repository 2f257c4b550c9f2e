"""RoBERTa (``model_type: roberta``): BERT's encoder with learned positions offset by
``pad_token_id + 1`` (row p + 2 for RoBERTa's pad id 1; ``max_position_embeddings`` counts those
rows, so 514 is 512 usable positions), one token type, an LM head ``lm_head`` (exact GELU); the
bare model (sentence-transformers folders) with or without its pooler. The sequence-classification
head (``classifier.dense`` -> tanh -> ``classifier.out_proj``) is refused for now: it is the spec's
cls + dense_tanh pooler + classifier, but its dense layer sits where BERT's pooler does not, and
a weight table whose export depends on the head is not written yet.

Positions: RoBERTa numbers the real tokens of each row from the first one (padding_idx + 1 +
count of non-pad tokens before); blueprint's encoders number 0..s-1. The two agree on rows whose
padding is at the end (what tokenizers produce), which the parity tests check; a left-padded
row would differ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.errors import BlueprintError
from blueprint.families import Family
from blueprint.families import bert
from blueprint.families.weightmap import Rule, Unused, WeightMap, buffer, unless_masked_lm
from blueprint.hf.common import architecture
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    if head is None and architecture(r).endswith("ForSequenceClassification"):
        raise BlueprintError("config.json: RobertaForSequenceClassification is not supported yet",
                             hint="import the base model (RobertaModel) or the masked-LM checkpoint")
    body = bert.to_spec(r, head)
    pad = r.get("pad_token_id")
    if pad is None or pad < 0:
        raise BlueprintError("config.json: RoBERTa needs pad_token_id (its positions start after the padding row)")
    offset = pad + 1
    if body["max_seq_len"] <= offset:
        raise BlueprintError(f"config.json: max_position_embeddings ({body['max_seq_len']}) leaves no position "
                             f"after RoBERTa's {offset} reserved rows")
    body["max_seq_len"] -= offset
    body["positional"] = {"kind": "learned", "offset": offset}
    body["type_vocab_size"] = r.get("type_vocab_size", 1)
    if body["head"]["kind"] == "masked_lm":
        body["head"]["activation"] = "gelu"  # RobertaLMHead applies exact GELU whatever hidden_act is
    return body


def detect(spec: "ModelSpec") -> str | None:
    pos = spec.positional
    if not spec.is_decoder and pos.kind == "learned" and pos.offset > 0 and spec.block.norm_placement == "post":
        return "roberta"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    config = bert.to_config(spec, model_type)
    if spec.head.kind == "classification":
        raise BlueprintError("export-hf: RoBERTa's classification head is not supported yet",
                             hint="export a masked_lm or embeddings head")
    config["architectures"] = ["RobertaForMaskedLM" if spec.head.kind == "masked_lm" else "RobertaModel"]
    config["max_position_embeddings"] = spec.max_seq_len + spec.positional.offset
    config["pad_token_id"] = spec.positional.offset - 1  # the driver's token ids must agree (checked on re-import)
    return config


def _export_prefix(spec: "ModelSpec") -> str:
    """RobertaForMaskedLM nests the encoder as ``roberta.``; RobertaModel does not."""
    return "roberta." if spec.head.kind == "masked_lm" else ""


_ENCODER = tuple(rule for rule in bert.WEIGHTS.rules if rule.base and not rule.hf.startswith("pooler."))
WEIGHTS = WeightMap(
    prefix="roberta.",
    export_prefix=_export_prefix,
    rules=_ENCODER + (
        Rule("pooler.dense.{part}", "head.pooler.{part}"),
        Rule("lm_head.dense.{part}", "head.dense.{part}", base=False),
        Rule("lm_head.layer_norm.{part}", "head.norm.{part}", base=False),
        Rule("lm_head.decoder.weight", "head.decoder.weight", base=False),
        Rule("lm_head.bias", "head.decoder.bias", base=False, aliases=("lm_head.decoder.bias",)),
    ),
    unused=(
        Unused("embeddings.position_ids", buffer),
        Unused("embeddings.token_type_ids", buffer),
        Unused("pooler.dense.{part}", bert._pooler_unused),
        Unused("lm_head.{*}", unless_masked_lm),
    ),
    tied_head="head.decoder.weight",
)

FAMILY = Family(name="roberta", model_types=("roberta",), to_spec=to_spec, detect=detect, to_config=to_config,
                weights=WEIGHTS)
