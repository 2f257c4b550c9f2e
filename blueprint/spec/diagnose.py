"""Map pydantic validation errors back to the YAML: FILE:LINE:COL: dotted.path: message + hint.

pydantic reports a ``loc`` tuple that mixes real keys with union tags (``('head',
'classification', 'num_labels')``). We walk the loc alongside the raw data to recover the path
the user wrote, then ask ``Positions`` where it is. Hints come from the schema itself: the
allowed keys of the model at that path (did-you-mean via difflib), the variants of a tagged
union, or the other section where a misplaced key belongs.
"""

from __future__ import annotations

import difflib
import functools
import re
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from blueprint.errors import SpecIssue
from blueprint.spec.source import Path, Positions, dotted


def expand_type(tp: Any) -> list[Any]:
    """Unwrap Annotated / Optional / Union into the concrete alternatives."""
    origin = get_origin(tp)
    if origin is Annotated:
        return expand_type(get_args(tp)[0])
    if origin is Union or origin is types.UnionType:
        return [t for arg in get_args(tp) for t in expand_type(arg)]
    return [tp]


def is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def kind_of(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("kind")
    return field.default if field is not None and isinstance(field.default, str) else None


def models_at(root: type[BaseModel], path: Path) -> list[type[BaseModel]]:
    """The schema models that may sit at ``path`` (a data path, tags already removed)."""
    current: list[Any] = [root]
    for item in path:
        nxt: list[Any] = []
        for tp in current:
            if is_model(tp) and isinstance(item, str) and item in tp.model_fields:
                nxt += expand_type(tp.model_fields[item].annotation)
            elif get_origin(tp) is list and isinstance(item, int):
                nxt += expand_type(get_args(tp)[0])
        current = nxt
    return [tp for tp in current if is_model(tp)]


def _narrow(models: list[type[BaseModel]], data: Any) -> list[type[BaseModel]]:
    """Keep the union variant whose ``kind`` the data names, when it names one."""
    if isinstance(data, dict) and isinstance(data.get("kind"), str):
        chosen = [m for m in models if kind_of(m) == data["kind"]]
        return chosen or models
    return models


@functools.lru_cache(maxsize=8)
def _key_homes(root: type[BaseModel]) -> dict[str, list[str]]:
    """field name -> dotted sections where it is a valid key (for "did you mean to put it in")."""
    homes: dict[str, list[str]] = {}
    todo: list[tuple[Any, str]] = [(root, "")]
    seen: set[tuple[Any, str]] = set()
    while todo:
        tp, prefix = todo.pop()
        if (tp, prefix) in seen or prefix.count(".") > 4:
            continue
        seen.add((tp, prefix))
        for name, field in tp.model_fields.items():
            homes.setdefault(name, [])
            if prefix not in homes[name]:
                homes[name].append(prefix or "the top level")
            for sub in expand_type(field.annotation):
                if get_origin(sub) is list:
                    sub = next((s for s in expand_type(get_args(sub)[0]) if is_model(s)), None)
                if is_model(sub):
                    todo.append((sub, f"{prefix}.{name}" if prefix else name))
    # deeply nested sections (a mixture's expert, router) after the usual homes, so a hint's
    # first few are the likely ones
    return {name: sorted(where, key=lambda h: max(0, h.count(".") - 1)) for name, where in homes.items()}


def close_match(word: str, choices: list[str]) -> str | None:
    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(word: Any, choices: list[str], noun: str = "") -> str | None:
    choices = sorted(set(choices))
    match = close_match(str(word), choices) if isinstance(word, str) else None
    listed = ", ".join(choices)
    if match:
        return f"did you mean {match!r}? ({noun or 'choices'}: {listed})"
    return f"{noun or 'choices'}: {listed}" if choices else None


def data_path(loc: tuple[Any, ...], data: Any) -> tuple[Path, Any]:
    """Turn a pydantic loc into the data path the user wrote, and the value at its parent.

    A loc item that is not a key of the current mapping is a union tag when more items follow
    (skipped); when it is the last item it names a missing or unknown key (kept).
    """
    path: list[str | int] = []
    current = data
    parent = data
    for n, item in enumerate(loc):
        last = n == len(loc) - 1
        if isinstance(current, dict) and item in current:
            path.append(item)
            parent, current = current, current[item]
        elif isinstance(current, list) and isinstance(item, int) and 0 <= item < len(current):
            path.append(item)
            parent, current = current, current[item]
        elif last and isinstance(current, dict):
            path.append(item)
            parent, current = current, None
        # else: a union tag (or a loc step below a scalar): nothing in the data to follow
    return tuple(path), parent


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML terms (null, true), cut to one short line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _yaml_type(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
             dict: "mapping"}
    return names.get(type(value), type(value).__name__)


def _got(value: Any) -> str:
    return "null" if value is None else f"{_yaml_type(value)} {_show(value)}"


_FIRST_CAP = re.compile(r"^[A-Z][a-z]")


def _plain(message: str) -> str:
    message = message.removeprefix("Value error, ")
    return message[0].lower() + message[1:] if _FIRST_CAP.match(message) else message


def explain_error(err: dict[str, Any], data: Any, root: type[BaseModel]) -> tuple[Path, bool, str, str | None]:
    """One pydantic error -> (data path, point at key?, message, hint)."""
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    path, parent = data_path(tuple(err["loc"]), data)
    if kind == "extra_forbidden":
        key = path[-1]
        allowed = [name for m in _narrow(models_at(root, path[:-1]), parent) for name in m.model_fields]
        hint = None
        match = close_match(str(key), allowed)
        homes = [h for h in _key_homes(root).get(str(key), []) if h != dotted(path[:-1])]
        if len(homes) == 1:  # a key with one home is specific: the user put it in the wrong place
            hint = f"{key!r} belongs in {homes[0]}"
        elif homes and match:  # a generic key (bias, kind): more likely a near-miss here
            hint = f"did you mean {match!r}? ({key!r} is a key of {' / '.join(homes[:3])})"
        elif homes:
            hint = f"{key!r} belongs in {' or '.join(homes[:3])}"
        elif match:
            hint = f"did you mean {match!r}?"
        elif allowed:
            hint = f"allowed keys here: {', '.join(allowed)}"
        return path, True, f"unknown key {key!r}", hint
    if kind == "missing":
        return path, True, f"missing required key {path[-1]!r}", None
    if kind == "spec_rule":
        field = ctx.get("field")
        loc = tuple(err["loc"])
        if loc and isinstance(value, dict) and loc[-1] == value.get("kind"):  # a union member's own rule
            path, parent = data_path(loc[:-1], data)
        if field and isinstance(value, dict) and field in value:
            path = path + (field,)
        return path, False, ctx.get("reason", err["msg"]), None
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = [k for m in models_at(root, path) if (k := kind_of(m))]
        if kind == "union_tag_not_found":
            return path, True, "missing 'kind'", f"add kind: one of {', '.join(tags)}"
        tag = ctx.get("tag")
        return path + ("kind",), False, f"unknown kind {tag!r}", did_you_mean(tag, tags, "kinds")
    if kind == "literal_error":
        expected = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return path, False, f"{_show(value)} is not one of {', '.join(map(repr, expected))}", \
            did_you_mean(value, expected)
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return path, False, f"expected a mapping, got {_got(value)}", None
    if kind in ("list_type", "tuple_type"):
        return path, False, f"expected a list, got {_got(value)}", None
    if kind == "checkpoint_policy":
        hint = None
        if isinstance(value, dict):
            keys = ["every", "layers", "memory_budget"]
            unknown = [k for k in value if k not in keys]
            if unknown:
                hint = did_you_mean(unknown[0], keys, "keys")
        elif isinstance(value, str):
            hint = did_you_mean(value, ["none", "every_layer"])
        return path, False, err["msg"], hint
    message = _plain(err["msg"])
    hint = None
    if kind == "string_type" and isinstance(value, (bool, int, float)):
        hint = f"quote the value to make it a string (YAML read it as a {_yaml_type(value)})"
    elif kind in ("bool_parsing", "bool_type"):
        hint = "use true or false"
    elif kind == "int_type" and isinstance(value, str) and _as_int(value) is not None:
        hint = f"write the number without quotes or separators: {_as_int(value)}"
    elif kind == "int_type" and isinstance(value, float) and value.is_integer():
        hint = f"write {int(value)} (a whole number, without a decimal point or exponent)"
    elif kind == "float_type" and isinstance(value, str):
        hint = "write the number without quotes (1.0e-5, not '1.0e-5')"
    elif kind == "finite_number":
        hint = "use a finite number"
    if not isinstance(value, (dict, list)) and kind != "missing":
        message += f" (got {_show(value)})"
    return path, False, message, hint


def _as_int(text: str) -> int | None:
    try:
        return int(text.strip().replace("_", ""))
    except ValueError:
        return None


def issues_from_validation(error: ValidationError, data: Any, positions: Positions,
                           root: type[BaseModel], prefix: Path = ()) -> list[SpecIssue]:
    """Every error of one pydantic validation, located, in source order.

    ``prefix`` is where ``data`` sits inside the spec (an override's ``set`` body is validated
    as a BlockSpec at ``layers.K.set``).
    """
    issues: list[SpecIssue] = []
    seen: set[tuple[Any, ...]] = set()
    for err in error.errors():
        path, on_key, message, hint = explain_error(err, data, root)
        full = prefix + path
        loc = positions.locate(full, on_key=on_key)
        issue = SpecIssue(message, dotted(full), loc.file, loc.line, loc.column, hint)
        if (issue.path, issue.message) not in seen:
            seen.add((issue.path, issue.message))
            issues.append(issue)
    return sort_issues(issues)


def sort_issues(issues: list[SpecIssue]) -> list[SpecIssue]:
    return sorted(issues, key=lambda i: (i.file, i.line or 0, i.column or 0))
