"""Hugging Face tensor names -> blueprint canonical names: ``hf_to_canonical``.

The per-family tables live in ``compiler.weights.hf_families`` and their layout handlers in
``compiler.weights.hf_rules``. A checkpoint tensor that matches no rule of its family is an
error naming it. The only exception is the family's explicit ``unused`` table: parts a spec may
legitimately not use, reported through ``note`` by name and count, never dropped silently.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable

import torch

from blueprint.errors import BlueprintError
from compiler.weights.hf_families import FAMILIES
from compiler.weights.hf_rules import Family, Out

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec

__all__ = ["FAMILIES", "family_for", "hf_to_canonical"]


def family_for(config: dict[str, Any]) -> Family:
    model_type = config.get("model_type")
    if model_type not in FAMILIES:
        raise BlueprintError(
            f"config.json: model_type '{model_type}' has no weight-name map",
            hint=f"supported model types: {', '.join(sorted(FAMILIES))}",
        )
    return FAMILIES[model_type]


def _put(out: Out, canonical: str, t: torch.Tensor, source: str, origin: dict[str, str]) -> None:
    """Store a mapped tensor; two checkpoint names may feed one parameter only if they agree."""
    if canonical in out:
        if out[canonical].shape == t.shape and torch.equal(out[canonical], t):
            return  # e.g. BERT's cls.predictions.bias and its tied decoder.bias alias
        raise BlueprintError(
            f"checkpoint tensors '{origin[canonical]}' and '{source}' both map to "
            f"'{canonical}' but differ",
            hint="re-save the checkpoint so each parameter is stored once",
        )
    out[canonical] = t
    origin[canonical] = source


def hf_to_canonical(
    tensors: dict[str, torch.Tensor],
    config: dict[str, Any],
    spec: "ModelSpec",
    *,
    note: Callable[[str], None],
    origins: dict[str, str] | None = None,
) -> Out:
    """Map a Hugging Face checkpoint's tensors to canonical names (shapes checked later).

    ``origins``, when given, receives canonical name -> the checkpoint name it came from, so
    later errors can name the tensor as the user's checkpoint spells it.

    Raises:
        BlueprintError: a tensor that matches no rule of the family, or two names that map to
            one parameter with different values, or a tied head that differs from the embedding.
    """
    family = family_for(config)
    # The base-model prefix is optional (a bare LlamaModel has none), and matching the full
    # name keeps it in every error message (``m.string``).
    prefix = "(?:" + "|".join(re.escape(p) for p in family.prefixes) + ")?"
    rules = [(re.compile(prefix + p), h) for p, h in family.rules]
    unused = [(re.compile(prefix + u.pattern), u) for u in family.unused]
    out: Out = {}
    origin: dict[str, str] = {} if origins is None else origins
    ignored: dict[str, list[str]] = {}
    unknown: list[str] = []
    for name in sorted(tensors):
        skip = next((u for rx, u in unused if rx.fullmatch(name) and u.reason(spec)), None)
        if skip is not None:
            ignored.setdefault(skip.reason(spec) or "", []).append(name)
            continue
        for rx, handler in rules:
            m = rx.fullmatch(name)
            if m:
                for canonical, t in handler(m, tensors[name], spec).items():
                    _put(out, canonical, t, name, origin)
                break
        else:
            unknown.append(name)
    if unknown:
        raise BlueprintError(
            f"checkpoint tensors with no place in a {config.get('model_type')} spec: "
            + ", ".join(f"'{n}'" for n in unknown[:12])
            + (f" ... ({len(unknown) - 12} more)" if len(unknown) > 12 else ""),
            hint="the checkpoint has parts blueprint does not model; check the model type "
            "and the head kind in the spec",
        )
    for reason, names in ignored.items():
        shown = ", ".join(names[:4]) + (f", ... ({len(names) - 4} more)" if len(names) > 4 else "")
        note(f"ignoring {len(names)} checkpoint tensor(s) ({shown}): {reason}")
    _resolve_tied_head(out, origin, family, spec)
    return out


def _resolve_tied_head(out: Out, origin: dict[str, str], family: Family, spec: "ModelSpec") -> None:
    """A tied spec stores the output projection once, as the embedding; a copy must be equal."""
    head = family.tied_head
    if not spec.tie_embeddings or head not in out:
        return
    emb = out.get("embed.tokens.weight")
    if emb is not None and emb.shape == out[head].shape and torch.equal(emb, out[head]):
        del out[head]
        return
    raise BlueprintError(
        f"the spec ties embeddings, but checkpoint tensor '{origin[head]}' differs from the "
        "token embedding",
        hint="set tie_embeddings: false in the spec to load a separate output projection",
    )
