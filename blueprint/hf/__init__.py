"""Hugging Face interop on the spec side: ``config.json`` <-> blueprint spec. Imports no torch.

``config_to_spec`` maps one config mapping to a spec mapping (validated before it is returned)
through the family module the registry (``blueprint.families``) has for its ``model_type``;
``import_folder`` reads a whole model folder: config, tokenizer.json and the sentence-transformers
module files that decide pooling. ``spec_to_config`` (in ``blueprint.hf.to_config``) goes back.
Every config field is either used, known to be irrelevant, or an error naming it.
"""

from __future__ import annotations

import re
from typing import Any

from blueprint.errors import BlueprintError
from blueprint.hf.fields import ConfigReader


def spec_name(text: str) -> str:
    """A valid spec name from a folder or model name ("all-MiniLM-L6-v2", "Llama 3" -> "Llama-3")."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")[:128]
    return name or "imported"


def config_to_spec(
    config: dict[str, Any],
    *,
    name: str = "imported",
    head: dict[str, Any] | None = None,
    tokenizer: dict[str, Any] | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Map a Hugging Face config mapping to a validated blueprint spec mapping.

    Args:
        config: the parsed ``config.json``.
        name: the spec's name.
        head: a head section that overrides the one implied by ``architectures`` (e.g. the
            mean-pooled, normalised embeddings head of a sentence-transformers folder).
        tokenizer: tokenizer fields found outside config.json (path, vocab_size, mask_id...).
        notes: receives what the import left out and why (special token ids outside the
            vocabulary: transformers loads such configs with a warning, and so does blueprint).
    Returns:
        The spec as a plain mapping, already validated by ``ModelSpec``.
    Raises:
        BlueprintError: unknown model type, an unsupported value, or an unknown field (named).
    """
    from blueprint import families

    model_type = config.get("model_type")
    family = families.get(model_type)
    reader = ConfigReader(config, model_type, family.irrelevant)
    reader.expect("is_encoder_decoder", (False,), "encoder-decoder models are not modelled")
    reader.expect("tie_encoder_decoder", (False,), "encoder-decoder models are not modelled")
    reader.expect("cross_attention_hidden_size", (None,), "cross-attention is not modelled")
    reader.expect("pruned_heads", ({},), "pruned heads give some layers other sizes; import the unpruned "
                  "model or write the per-layer num_heads overrides by hand")
    try:
        body = family.to_spec(reader, head)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, ZeroDivisionError) as err:
        # Fields are type-checked as they are read; this catches malformed nested values
        # (e.g. a rope_parameters entry) so that bad input never shows a traceback.
        raise BlueprintError(f"config.json: a malformed value for model_type '{model_type}' "
                             f"({type(err).__name__}: {err})",
                             hint="compare the file with what transformers' save_pretrained writes") from None
    reader.finish()
    ids = body.pop("_tokenizer")
    spec: dict[str, Any] = {"name": spec_name(name), **body}
    if not spec.get("layers"):
        spec.pop("layers", None)
    tok = _inside_vocabulary({**ids, **(tokenizer or {})}, spec["vocab_size"], notes)
    if tok:
        spec["tokenizer"] = dict(sorted(tok.items(), key=lambda kv: kv[0] != "path"))
    _validate(spec)
    return spec


def _inside_vocabulary(tok: dict[str, Any], vocab_size: int, notes: list[str] | None) -> dict[str, Any]:
    """The tokenizer fields with every special id outside the vocabulary left out (a note each).

    GPT2Config's default bos/eos 50256 with a small vocabulary, ModernBERT's default special ids:
    transformers loads these configs and only warns; the ids simply never occur."""
    limit = min(vocab_size, tok.get("vocab_size") or vocab_size)
    out: dict[str, Any] = {}
    for key, value in tok.items():
        if not key.endswith("_id"):
            out[key] = value
            continue
        values = value if isinstance(value, list) else [value]
        kept = [v for v in values if v < limit]
        for v in values:
            if v >= limit and notes is not None:
                notes.append(f"{key} {v} is outside the vocabulary ({limit} ids); left out of the spec")
        if kept:
            out[key] = kept if isinstance(value, list) and len(kept) > 1 else kept[0]
    return out


def _validate(spec: dict[str, Any]) -> None:
    from pydantic import ValidationError

    from blueprint.spec.schema import ModelSpec

    try:
        ModelSpec.model_validate(spec)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BlueprintError(
            f"the imported spec is invalid at {where}: {first['msg']}",
            hint="this config uses a combination blueprint cannot express",
        ) from None


def import_folder(folder: Any, *, spec_dir: Any = None, name: str | None = None,
                  notes: list[str] | None = None) -> dict[str, Any]:
    """Read a Hugging Face model folder into a spec mapping (see ``blueprint.hf.folder``)."""
    from blueprint.hf.folder import import_folder as _import

    return _import(folder, spec_dir=spec_dir, name=name, notes=notes)


__all__ = ["config_to_spec", "import_folder", "spec_name"]
