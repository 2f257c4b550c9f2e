"""Blueprint canonical tensors -> Hugging Face names and layouts (the inverse of ``hf_names``).

Generic: the family module's weight rules (``blueprint/families/``, docs/architecture.md
"Adding a family") are read backwards. Each rule's canonical template is matched against the
canonical names; the tensors a fused rule needs (q, k, v; gate, up; two norms) are grouped by
their other placeholders and joined by the rule's named transform (``hf_transforms``).
``to_hf_state`` then maps the result forward again with ``hf_to_canonical`` and requires it
to reproduce the input exactly, so an export can never silently disagree with import.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

import torch

from blueprint import families
from blueprint.errors import BlueprintError
from blueprint.families.weightmap import TRANSFORM_PARTS, Rule, WeightMap, choices_of, fill, template_regex
from compiler.weights.hf_names import hf_to_canonical
from compiler.weights.hf_transforms import TRANSFORMS

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec

State = dict[str, torch.Tensor]


@functools.lru_cache(maxsize=None)
def _export_rules(weights: WeightMap) -> list[tuple[re.Pattern, Rule]]:
    return [(re.compile(template_regex(r.ours, TRANSFORM_PARTS[r.transform], choices_of(r.hf))), r)
            for r in weights.rules]


def _export(w: State, spec: "ModelSpec", weights: WeightMap) -> State:
    """The checkpoint tensors for canonical ``w``; a canonical tensor no rule writes is an error."""
    prefix = weights.prefix_for(spec)
    out: State = {}
    done: set[str] = set()
    for rx, rule in _export_rules(weights):
        if rule.when is not None and not rule.when(spec):
            continue
        parts = TRANSFORM_PARTS[rule.transform]
        groups: dict[tuple, dict[str, str]] = {}
        for name in w:
            m = rx.fullmatch(name)
            if m and name not in done:
                b = {k: v for k, v in m.groupdict().items() if k != "n"}
                groups.setdefault(tuple(sorted(b.items())), {})[m.groupdict().get("n") or ""] = name
        for key, names in groups.items():
            bindings = dict(key)
            order = list(parts) or [""]
            missing = [n for n in order if n not in names]
            if missing:
                absent = ", ".join(f"'{fill(rule.ours, {**bindings, 'n': n})}'" for n in missing)
                raise BlueprintError(f"export-hf: checkpoint tensor '{fill(rule.hf, bindings)}' is fused from "
                                     f"{len(order)} tensors, and {absent} is missing")
            sources = [names[n] for n in order]
            hf = (prefix if rule.base else "") + fill(rule.hf, bindings)
            out[hf] = TRANSFORMS[rule.transform][1]([w[n] for n in sources], spec, bindings, sources)
            done.update(sources)
    left = sorted(set(w) - done)
    if left:
        raise BlueprintError(f"export-hf: tensor(s) {left[:6]} have no place in the family's checkpoint layout")
    return out


def to_hf_state(weights: State, spec: "ModelSpec", config: dict[str, Any]) -> State:
    """Canonical ``weights`` -> the state dict of ``config['model_type']``'s transformers class.

    Raises:
        BlueprintError: the family has no exporter, or mapping the result back does not give
            the input (a bug or a layout the family cannot hold), naming the first tensor.
    """
    family = config["model_type"]
    layout = families.get(family, what="has no weight layout for export-hf").weights
    out = {k: v.detach().contiguous() for k, v in _export(weights, spec, layout).items()}
    notes: list[str] = []
    back = hf_to_canonical(out, config, spec, note=notes.append)
    for name, t in weights.items():
        if name not in back or back[name].shape != t.shape or not torch.equal(back[name], t):
            raise BlueprintError(f"export-hf: tensor '{name}' does not survive the {family} layout round trip")
    extra = sorted(set(back) - set(weights))
    if extra or notes:
        raise BlueprintError(f"export-hf: the {family} layout produced unexpected tensors {extra or notes}")
    return out
