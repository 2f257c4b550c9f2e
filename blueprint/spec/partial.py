"""Partial validation: keep every piece of a spec the schema accepts, mark the rest UNKNOWN.

A spec with a misspelled ``norm.kind`` still has a perfectly good ``block`` and ``layers``; the
cross-field rules about those should run in the same pass, so the user sees every error at once
instead of one stage at a time. ``salvage`` rebuilds the spec from the pieces that validate on
their own and puts ``UNKNOWN`` where a piece was rejected.

``UNKNOWN`` poisons whatever touches it: reading an attribute, comparing, doing arithmetic or
asking its truth raises ``Unknown``. A rule wrapped in ``contextlib.suppress(Unknown)`` therefore
runs when its inputs were accepted and stops silently when one was not (that input already has
its own error), so no rule needs to list what it depends on.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from blueprint.spec.diagnose import expand_type, is_model, kind_of
from blueprint.spec.source import Path


class Unknown(Exception):
    """A rule used a value the validator cannot know (it was rejected, or derives from one)."""


class _UnknownValue:
    """The single ``UNKNOWN`` value; every use but ``is`` and ``repr`` raises ``Unknown``."""

    __slots__ = ()
    __hash__ = object.__hash__  # kept hashable: it may sit in containers the rules build

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy/pickle probe dunders; those must stay AttributeErrors
            raise AttributeError(name)
        raise Unknown(name)

    def _refuse(self, *args: Any) -> Any:
        raise Unknown()


# Every operator a rule might apply to a spec value refuses, so no rule can decide on UNKNOWN.
for _name in ("eq ne lt le gt ge bool index int float format iter len contains getitem neg abs "
              "add radd sub rsub mul rmul truediv rtruediv floordiv rfloordiv mod rmod pow round"
              ).split():
    setattr(_UnknownValue, f"__{_name}__", _UnknownValue._refuse)

UNKNOWN: Any = _UnknownValue()


def derive(fn: Any, *inputs: Any) -> Any:
    """``fn(*inputs)``, or UNKNOWN when an input is (a default derived from a rejected value)."""
    return UNKNOWN if any(x is UNKNOWN for x in inputs) else fn(*inputs)


def dump(value: Any) -> Any:
    """``model_dump(mode="python")`` that also walks partial models, keeping UNKNOWN leaves."""
    if isinstance(value, BaseModel):
        return {name: dump(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, list):
        return [dump(v) for v in value]
    if isinstance(value, dict):
        return {k: dump(v) for k, v in value.items()}
    return value


def without_unknown(data: Any, prefix: Path = ()) -> tuple[Any, set[Path]]:
    """``data`` with its UNKNOWN leaves removed, and the paths they were at."""
    if isinstance(data, dict):
        out, gone = {}, set()
        for key, value in data.items():
            if value is UNKNOWN:
                gone.add(prefix + (key,))
            else:
                out[key], below = without_unknown(value, prefix + (key,))
                gone |= below
        return out, gone
    return data, set()


@functools.lru_cache(maxsize=None)
def _adapter(tp: Any) -> TypeAdapter:
    return TypeAdapter(tp)


def _field_type(model: type[BaseModel], name: str) -> Any:
    info = model.model_fields[name]
    return Annotated[info.annotation, info]  # keeps the field's constraints and discriminator


def _variant(tp: Any, value: Any) -> type[BaseModel] | None:
    """The one model ``tp`` means for ``value``: the only one, or the union member named by
    ``kind``. None when that is ambiguous (then a failing value is rejected whole)."""
    models = [m for m in expand_type(tp) if is_model(m)]
    if len(models) > 1 and isinstance(value, dict):
        models = [m for m in models if kind_of(m) is not None and kind_of(m) == value.get("kind")]
    return models[0] if len(models) == 1 else None


def _list_item_type(tp: Any) -> Any | None:
    found = [t for t in expand_type(tp) if get_origin(t) is list]
    return get_args(found[0])[0] if len(found) == 1 else None


def known(value: Any) -> Any:
    """``value`` if nothing inside it is UNKNOWN, else raise ``Unknown``.

    For code that relies on a model's own validator (``LayerOverride``'s single selector): a
    partial model was built without running it.
    """
    if value is UNKNOWN:
        raise Unknown()
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            known(getattr(value, name))
    elif isinstance(value, (list, tuple)):
        for item in value:
            known(item)
    elif isinstance(value, dict):
        for item in value.values():
            known(item)
    return value


def salvage(tp: Any, value: Any, *, context: Any = None, unknown: frozenset[Path] = frozenset(),
            path: Path = ()) -> Any:
    """``value`` validated as ``tp``, keeping what validates: a model (or list) that fails is
    rebuilt from its parts, with UNKNOWN for each part that fails on its own.

    Unknown keys are dropped (they are errors of their own, not values). When every part
    validates, the model is validated again from those parts, so its own validator runs and a
    failure there makes it UNKNOWN whole. Otherwise ``model_construct`` builds a partial model,
    on which no model validator has run (see ``known``). ``unknown`` holds paths below ``path``
    that must come out UNKNOWN although ``value`` lacks them (a default must not fill in).
    """
    return _salvage(tp, value, context, unknown, path)[0]


def _salvage(tp: Any, value: Any, context: Any, unknown: frozenset[Path], path: Path
             ) -> tuple[Any, bool]:
    """(value, complete?) for ``salvage``; complete means no UNKNOWN anywhere inside."""
    if path in unknown:
        return UNKNOWN, False
    if not any(p[:len(path)] == path for p in unknown):
        try:
            return _adapter(tp).validate_python(value, context=context), True
        except ValidationError:
            pass
    model = _variant(tp, value) if isinstance(value, dict) else None
    if model is not None:
        parts: dict[str, tuple[Any, bool]] = {}
        for name, info in model.model_fields.items():
            here = path + (name,)
            if name in value:
                parts[name] = _salvage(_field_type(model, name), value[name], context, unknown,
                                       here)
            elif info.is_required() or here in unknown:
                parts[name] = (UNKNOWN, False)
        if all(ok for _, ok in parts.values()):
            return _revalidate(_adapter(model), {n: v for n, (v, _) in parts.items()}, context)
        return model.model_construct(**{n: v for n, (v, _) in parts.items()}), False
    item = _list_item_type(tp) if isinstance(value, list) else None
    if item is not None:
        items = [_salvage(item, v, context, unknown, path + (i,)) for i, v in enumerate(value)]
        if all(ok for _, ok in items):
            return _revalidate(_adapter(tp), [v for v, _ in items], context)
        return [v for v, _ in items], False
    return UNKNOWN, False


def _revalidate(adapter: TypeAdapter, parts: Any, context: Any) -> tuple[Any, bool]:
    """Validate a container from parts that each validated: what fails now is its own rule."""
    try:
        return adapter.validate_python(parts, context=context), True
    except ValidationError:
        return UNKNOWN, False
