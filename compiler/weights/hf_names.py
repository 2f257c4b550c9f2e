"""Hugging Face tensor names -> blueprint canonical names: ``hf_to_canonical``.

The per-family name tables are the ``weights`` of each family module (``blueprint/families/``,
docs/architecture.md "Adding a family"); their named transforms are implemented in
``compiler.weights.hf_transforms``. A checkpoint tensor that matches no rule of its family is an
error naming it. The only exception is the family's explicit ``unused`` table: parts a spec may
legitimately not use, reported through ``note`` by name and count, never dropped silently.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any, Callable

import torch

from blueprint import families
from blueprint.errors import BlueprintError
from blueprint.families.weightmap import TRANSFORM_PARTS, Rule, Unused, WeightMap, fill, template_regex
from compiler.weights.hf_transforms import TRANSFORMS

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec

__all__ = ["family_for", "hf_to_canonical", "import_rules"]

Out = dict[str, torch.Tensor]
assert set(TRANSFORMS) == set(TRANSFORM_PARTS), "every named transform needs an implementation"


def family_for(config: dict[str, Any]) -> WeightMap:
    """The weight map of ``config['model_type']``'s family module."""
    return families.get(config.get("model_type"), what="has no weight-name map").weights


@functools.lru_cache(maxsize=None)
def import_rules(weights: WeightMap) -> tuple[list[tuple[re.Pattern, Rule]], list[tuple[re.Pattern, Unused]]]:
    """The compiled checkpoint-side patterns (base-model prefix optional; matching the full
    name keeps it in every error message)."""
    prefix = f"(?:{re.escape(weights.prefix)})?"
    rules = [(re.compile(prefix + template_regex(hf)), rule)
             for rule in weights.rules for hf in (rule.hf, *rule.aliases)]
    unused = [(re.compile(prefix + template_regex(u.pattern)), u) for u in weights.unused]
    return rules, unused


def _split(rule: Rule, m: re.Match, t: torch.Tensor, spec: "ModelSpec") -> Out:
    """Canonical name -> tensor for one matched checkpoint tensor."""
    bindings = {k: v for k, v in m.groupdict().items() if v is not None}
    parts = TRANSFORM_PARTS[rule.transform]
    tensors = TRANSFORMS[rule.transform][0](t, spec, bindings, m.string)
    if not parts:
        return {fill(rule.ours, bindings): tensors[0]}
    return {fill(rule.ours, {**bindings, "n": n}): x for n, x in zip(parts, tensors)}


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
    rules, unused = import_rules(family)
    out: Out = {}
    origin: dict[str, str] = {} if origins is None else origins
    ignored: dict[str, list[str]] = {}
    unknown: list[str] = []
    for name in sorted(tensors):
        skip = next((u for rx, u in unused if rx.fullmatch(name) and u.reason(spec)), None)
        if skip is not None:
            ignored.setdefault(skip.reason(spec) or "", []).append(name)
            continue
        for rx, rule in rules:
            m = rx.fullmatch(name)
            if m:
                for canonical, t in _split(rule, m, tensors[name], spec).items():
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


def _resolve_tied_head(out: Out, origin: dict[str, str], family: WeightMap, spec: "ModelSpec") -> None:
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
