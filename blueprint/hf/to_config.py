"""Spec -> Hugging Face ``config.json`` for the families transformers can load back.

The family is recognised from the spec's structure: each family module's ``detect``
(``blueprint.families``) and its ``to_config`` write the body. The result is checked by mapping it back
with ``config_to_spec`` and comparing every architectural field (per layer): if the round trip
does not reproduce the spec, the spec uses something that family's config cannot say, and the
export is refused naming the first field that differs. Imports no torch.
"""

from __future__ import annotations

from typing import Any

from blueprint.errors import BlueprintError
from blueprint.hf import config_to_spec
from blueprint.spec.schema import ModelSpec

def detect_family(spec: ModelSpec) -> str:
    """The transformers model_type whose layout the spec has, or an error saying why none fits."""
    from blueprint import families

    return families.detect(spec)[0]


def _token_ids(spec: ModelSpec) -> dict[str, Any]:
    t = spec.tokenizer
    if t is None:
        return {}
    return {"bos_token_id": t.bos_id, "eos_token_id": t.eos_id, "pad_token_id": t.pad_id}


def spec_to_config(spec: ModelSpec) -> dict[str, Any]:
    """The config.json mapping for ``spec``, verified to import back to the same architecture.

    Raises:
        BlueprintError: no supported family has this layout, or the family's config cannot
            express some field of the spec (named).
    """
    from blueprint import families

    family, module = families.detect(spec)
    body = module.to_config(spec, family)
    ids = {k: v for k, v in _token_ids(spec).items() if v is not None}
    config = {"model_type": family, **body, **ids}
    head = spec.head.model_dump() if spec.head.kind == "embeddings" else None
    back = ModelSpec.model_validate(config_to_spec(config, name=spec.name, head=head))
    _same_architecture(spec, back, family)
    return config


_TOP = ("vocab_size", "max_seq_len", "embed_dim", "num_layers", "type_vocab_size", "tie_embeddings",
        "positional", "norm", "embed_norm", "embed_multiplier", "final_norm", "head")


def _same_architecture(spec: ModelSpec, back: ModelSpec, family: str) -> None:
    pairs: list[tuple[str, Any, Any]] = [(k, getattr(spec, k), getattr(back, k)) for k in _TOP]
    for i, (mine, theirs) in enumerate(zip(spec.resolved_layers(), back.resolved_layers())):
        pairs.append((f"layers[{i}]", mine, theirs))
    for where, mine, theirs in pairs:
        m = mine.model_dump() if hasattr(mine, "model_dump") else mine
        t = theirs.model_dump() if hasattr(theirs, "model_dump") else theirs
        if where == "tie_embeddings" and spec.head.kind not in ("causal_lm", "masked_lm"):
            continue  # no output projection to tie
        if m != t:
            raise BlueprintError(
                f"spec '{spec.name}' cannot be written as a {family} config: {where} is {m}, "
                f"but the {family} layout gives {t}",
                hint="export-hf only writes specs that a transformers class computes exactly",
            )
