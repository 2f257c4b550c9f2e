"""Safe, bounded YAML loading that keeps a source position for every key and value.

Why not ``yaml.safe_load``: it forgets positions, silently keeps the last of two duplicate keys,
expands aliases without bound (a few hundred bytes can become hundreds of megabytes), crashes
or recurses without limit on deep nesting, and applies YAML 1.1's implicit typing (``1e-6`` is a
string, ``no``/``off`` are false, ``012`` is 10, ``12:30`` is 750).

What this loader does instead:

- Only PyYAML's pure-Python *composer* runs (the C loader segfaults on ~40,000 nested brackets);
  no object is ever constructed from a tag. We build plain dicts/lists/scalars ourselves.
- Size, nesting depth and node count are bounded before/while composing, so a hostile file is
  refused in milliseconds and ``RecursionError`` cannot happen.
- Anchors and aliases are refused: a spec has no use for them, and refusing them is the only
  bound on alias expansion that costs nothing.
- Duplicate keys are errors naming both lines; keys must be strings.
- Plain scalars are typed with the YAML 1.2 core schema: ``true``/``false`` are booleans,
  ``1e-6`` is a float, ``no``/``off``/``yes``/``on`` stay strings (so ``name: no`` is the string
  ``"no"``; a boolean field still accepts them, because the schema's boolean parsing maps
  ``no``/``off`` to false). Integers with a leading zero (``012``) are refused as ambiguous:
  YAML 1.1 tools read them as octal.

Every problem found while loading is collected, so one run reports all duplicate keys at once.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml
import yaml.reader
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from blueprint.errors import SpecError, SpecIssue
from blueprint.spec.source import Loc, Path, Positions

MAX_BYTES = 64 * 1024  # a real spec is a few KiB; the pure-Python composer takes ~0.5 s on 64 KiB
MAX_DEPTH = 32  # a spec nests about 6 deep (layers.0.set.attention.window)
MAX_NODES = 10_000

PLAIN = "!blueprint/plain"  # tag given to untagged plain scalars; we type them ourselves
_TAG = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null", "map", "seq")}

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9]+$")
_OCT = re.compile(r"^0o[0-7]+$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")


class AmbiguousScalar(ValueError):
    """A plain scalar that YAML 1.1 and 1.2 tools read differently (``012``)."""


def resolve_plain(text: str) -> Any:
    """Type one plain (unquoted) scalar by the YAML 1.2 core schema.

    Raises:
        AmbiguousScalar: for integers with a leading zero.
    """
    if _NULL.match(text):
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.match(text):
        digits = text.lstrip("+-")
        if len(digits) > 1 and digits.startswith("0"):
            raise AmbiguousScalar(
                f"ambiguous number {text!r}: YAML 1.1 tools read a leading zero as octal"
            )
        return int(text)
    if _OCT.match(text):
        return int(text[2:], 8)
    if _HEX.match(text):
        return int(text[2:], 16)
    if _FLOAT.match(text):
        return float(text)
    if _INF.match(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.match(text):
        return math.nan
    return text


class _Refused(Exception):
    """Raised inside the composer to stop at once on a hostile or unsupported construct."""

    def __init__(self, message: str, mark: Any, hint: str | None = None):
        super().__init__(message)
        self.message, self.mark, self.hint = message, mark, hint


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader's scanner, parser and composer, with bounds and without anchors/aliases.

    Only ``get_single_node`` is used; nothing is constructed by PyYAML.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def resolve(self, kind, value, implicit):  # noqa: ANN001, ANN201 - PyYAML's signature
        if kind is ScalarNode and implicit[0]:
            return PLAIN
        return super().resolve(kind, value, implicit)

    def compose_node(self, parent, index):  # noqa: ANN001, ANN201 - PyYAML's signature
        if self.check_event(AliasEvent):
            event = self.get_event()
            raise _Refused(f"alias *{event.anchor} is not allowed", event.start_mark,
                           "anchors and aliases are not supported; write the value out "
                           "(or use `extends:` to share a base spec)")
        event = self.peek_event()
        if event.anchor is not None:
            raise _Refused(f"anchor &{event.anchor} is not allowed", event.start_mark,
                           "anchors and aliases are not supported; write the value out "
                           "(or use `extends:` to share a base spec)")
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _Refused(f"too many values (more than {MAX_NODES})", event.start_mark)
        if self._depth >= MAX_DEPTH:
            raise _Refused(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _loc(file: str, mark: Any) -> Loc:
    if mark is None:
        return Loc(file, 1, 1)
    return Loc(file, mark.line + 1, mark.column + 1)


class _Builder:
    """Turns composed nodes into plain Python data plus positions, collecting issues."""

    def __init__(self, file: str):
        self.file = file
        self.issues: list[SpecIssue] = []
        self.positions = Positions(Loc(file, 1, 1))

    def issue(self, mark: Any, path: Path, message: str, hint: str | None = None) -> None:
        loc = _loc(self.file, mark)
        self.issues.append(SpecIssue(message, ".".join(map(str, path)), loc.file, loc.line,
                                     loc.column, hint))

    def build(self, node: Any, path: Path) -> Any:
        if node.tag not in _ALLOWED_TAGS and node.tag != PLAIN:
            self.issue(node.start_mark, path, f"tag {node.tag!r} is not allowed",
                       "remove the tag; specs use plain YAML values")
            return None
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            out = []
            for i, item in enumerate(node.value):
                self.positions.add(path + (i,), None, _loc(self.file, item.start_mark))
                out.append(self.build(item, path + (i,)))
            return out
        return self._scalar(node, path)

    def _scalar(self, node: ScalarNode, path: Path) -> Any:
        if node.tag == _TAG + "str":
            return node.value
        try:
            value = resolve_plain(node.value)
        except AmbiguousScalar as err:
            digits = node.value.lstrip("+-").lstrip("0") or "0"
            self.issue(node.start_mark, path, str(err),
                       f"write {digits} for the decimal number, or quote it for a string")
            return None
        if node.tag != PLAIN:  # an explicit standard tag such as !!float "1e-6"
            want = {"int": int, "float": (float, int), "bool": bool, "null": type(None)}
            kind = node.tag[len(_TAG):]
            if not isinstance(value, want[kind]) or (kind == "int" and isinstance(value, bool)):
                self.issue(node.start_mark, path, f"{node.value!r} is not a valid !!{kind}")
                return None
            return float(value) if kind == "float" else value
        return value

    def _mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.issue(key_node.start_mark, path, "a key must be a plain name, not a "
                           "mapping or list")
                continue
            key = key_node.value
            key_loc = _loc(self.file, key_node.start_mark)
            if key in first_line:
                self.issue(key_node.start_mark, path + (key,),
                           f"duplicate key {key!r}: first defined at line {first_line[key]}, "
                           f"again at line {key_loc.line}",
                           "remove one of them (YAML would silently keep the last)")
                continue
            first_line[key] = key_loc.line
            self.positions.add(path + (key,), key_loc, _loc(self.file, value_node.start_mark))
            out[key] = self.build(value_node, path + (key,))
        return out


def load_yaml(text: str | bytes, file: str = "<spec>") -> tuple[Any, Positions]:
    """Parse one YAML document into plain data and positions.

    Raises:
        SpecError: with every problem found (syntax errors stop at the first one).
    """
    root = Loc(file, 1, 1)
    size = len(text.encode("utf-8") if isinstance(text, str) else text)
    if size > MAX_BYTES:
        # (the size itself is not shown: a file is read only up to the limit plus one byte)
        raise SpecError(issues=[SpecIssue(f"file is larger than {MAX_BYTES} bytes; specs are limited to "
                                          f"{MAX_BYTES} bytes", "", file, 1, 1)])
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise SpecError(issues=[SpecIssue(f"not UTF-8 text ({err.reason} at byte "
                                              f"{err.start})", "", file, 1, 1)]) from None
    try:
        loader = _BoundedLoader(text)  # the reader rejects non-printable characters here
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, err.position) + 1
        column = err.position - (text.rfind("\n", 0, err.position) + 1) + 1
        code = err.character if isinstance(err.character, int) else ord(err.character)
        raise SpecError(issues=[SpecIssue(f"non-printable character U+{code:04X} is not allowed",
                                          "", file, line, column)]) from None
    try:
        node = loader.get_single_node()
    except _Refused as err:
        loc = _loc(file, err.mark)
        raise SpecError(issues=[SpecIssue(err.message, "", file, loc.line, loc.column,
                                          err.hint)]) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        loc = _loc(file, mark)
        what = " ".join(p for p in (err.context, err.problem) if p) or "invalid YAML"
        raise SpecError(issues=[SpecIssue(f"YAML syntax error: {what}", "", file, loc.line,
                                          loc.column)]) from None
    except yaml.YAMLError as err:
        raise SpecError(issues=[SpecIssue(f"YAML error: {err}", "", file, 1, 1)]) from None
    finally:
        loader.dispose()
    builder = _Builder(file)
    data = None if node is None else builder.build(node, ())
    if builder.issues:
        raise SpecError(issues=builder.issues)
    return data, builder.positions
