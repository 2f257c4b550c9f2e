"""The declarative half of a family's weight names: which checkpoint tensor is which canonical
tensor, and by which named transform. Imports no torch (a family module is read by import-hf,
which must stay light); the transforms themselves live in ``compiler.weights.hf_transforms``.

A name template is the tensor name with placeholders (docs/architecture.md, "Adding a family"):

- ``{i}``: a layer index (digits);
- ``{e}``: an expert index (digits; a mixture of experts stores each expert's tensors);
- ``{part}``: ``weight`` or ``bias``;
- ``{x:q|k|v}``: one of the listed words, bound to ``x`` (any identifier) for the other side;
- ``{n}`` (canonical side only): the parts a fused tensor splits into, named by the transform
  (``qkv`` -> q, k, v; ``gate_up`` -> gate, up; ``shared_norm`` -> attn_norm, ffn_norm);
- ``{*}`` (unused patterns only): anything.

Import matches checkpoint names against ``Rule.hf`` (and its aliases) and writes ``Rule.ours``;
export matches canonical names against ``Rule.ours`` and writes ``Rule.hf``: one table, both ways.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec

# transform name -> the values of {n} on the canonical side (empty: one tensor to one tensor)
TRANSFORM_PARTS: dict[str, tuple[str, ...]] = {
    "rename": (),
    "transpose": (),  # GPT-2 Conv1D stores [in, out]; nn.Linear is [out, in]
    "qkv": ("q", "k", "v"),  # rows [q; k; v] (ModernBERT Wqkv)
    "qkv_conv1d": ("q", "k", "v"),  # the same, in a Conv1D [in, out] weight (GPT-2 c_attn)
    "qkv_per_head": ("q", "k", "v"),  # rows [H, 3, hd] (GPT-NeoX query_key_value)
    "gate_up": ("gate", "up"),  # rows [activated half; multiplied half] (ModernBERT Wi)
    "shared_norm": ("attn_norm", "ffn_norm"),  # one norm feeding both sublayers of a parallel block (Phi)
    "qkv_grouped": ("q", "k", "v"),  # rows [KV, H/KV queries + k + v, hd] (Falcon query_key_value, GPT-BigCode c_attn)
}

_FIELD = re.compile(r"\{(\*|[A-Za-z_]\w*)(?::([^{}]*))?\}")


def choices_of(template: str) -> dict[str, str]:
    """``{x:a|b}`` placeholders of ``template``: name -> "a|b" (for the other side's bare ``{x}``)."""
    return {m.group(1): m.group(2) for m in _FIELD.finditer(template) if m.group(2) is not None}


def template_regex(template: str, parts: tuple[str, ...] = (), known: dict[str, str] | None = None) -> str:
    """The regular expression for a name template (placeholders become named groups).

    ``parts``: the values of ``{n}``; ``known``: the words of bare ``{x}`` placeholders, listed
    by the other side's template (``choices_of``)."""
    known = known or {}
    out, pos = [], 0
    for m in _FIELD.finditer(template):
        out.append(re.escape(template[pos:m.start()]))
        name, words = m.group(1), m.group(2) or known.get(m.group(1))
        if name == "*":
            out.append(".*")
        elif name == "i":
            out.append(r"(?P<i>\d+)")
        elif name == "e":
            out.append(r"(?P<e>\d+)")
        elif name == "part":
            out.append(r"(?P<part>weight|bias)")
        elif name == "n" and m.group(2) is None:
            out.append(f"(?P<n>{'|'.join(map(re.escape, parts))})")
        elif words is not None:
            out.append(f"(?P<{name}>{'|'.join(map(re.escape, words.split('|')))})")
        else:
            raise ValueError(f"name template {template!r}: placeholder {{{name}}} needs choices ({{{name}:a|b}})")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return "".join(out)


def fill(template: str, bindings: dict[str, str]) -> str:
    """The name ``template`` gives for ``bindings`` (placeholders replaced by their values)."""
    return _FIELD.sub(lambda m: bindings[m.group(1)], template)


@dataclass(frozen=True)
class Rule:
    """One checkpoint tensor <-> one or more canonical tensors.

    ``base``: the name sits under the base model's prefix (``model.``, ``bert.``...); heads
    (``lm_head``, ``cls.predictions``) usually do not. ``aliases``: other checkpoint spellings
    accepted on import (export writes ``hf``). ``when(spec)``: export uses the rule only for
    specs it holds for."""

    hf: str
    ours: str
    transform: str = "rename"
    base: bool = True
    aliases: tuple[str, ...] = ()
    # export only: whether this rule writes the spec's tensors (None: always). Two rules may
    # then give one canonical name different checkpoint names by layout (Falcon's norms).
    when: Callable[["ModelSpec"], bool] | None = None

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORM_PARTS:
            raise ValueError(f"weight rule {self.hf!r}: unknown transform {self.transform!r}")


@dataclass(frozen=True)
class Unused:
    """A checkpoint part a spec may deliberately leave out, with the reason told to the user;
    ``reason(spec)`` returns None when the spec does use it (then the rules map it)."""

    pattern: str
    reason: Callable[["ModelSpec"], str | None]


@dataclass(frozen=True)
class WeightMap:
    """A family's checkpoint layout: the base-model prefix, the rules, the deliberately unused
    parts, and the canonical name of the output projection that may be tied to the embedding.

    ``prefix`` is optional on import (a bare ``LlamaModel`` has none). ``export_prefix(spec)``
    says which prefix export writes (default ``prefix``; BERT's bare ``BertModel`` has none)."""

    prefix: str
    rules: tuple[Rule, ...]
    unused: tuple[Unused, ...] = ()
    tied_head: str = ""
    export_prefix: Callable[["ModelSpec"], str] | None = None

    def prefix_for(self, spec: "ModelSpec") -> str:
        return self.prefix if self.export_prefix is None else self.export_prefix(spec)


# Reasons shared by several families' ``unused`` tables.
def buffer(_spec: "ModelSpec") -> str:
    return "a buffer the compiled model recomputes"


def unless_masked_lm(spec: "ModelSpec") -> str | None:
    if spec.head.kind == "masked_lm":
        return None
    return f"the masked-LM head; the spec's head is {spec.head.kind}"
