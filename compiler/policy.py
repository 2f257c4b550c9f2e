"""Checkpoint policies as layer selectors. Imports no torch (the cost model uses it too).

A policy is a function ``(layer_index) -> bool``. ``policy_from_spec`` turns the spec's
``training.checkpointing`` value into one: ``none``, ``every_layer``, ``{every: k}`` (layers 0,
k, 2k, ...) or ``{layers: [...]}``; a callable is returned as is.
"""

from __future__ import annotations

from typing import Any, Callable

Policy = Callable[[int], bool]


def policy_from_spec(value: Any) -> Policy:
    """The layer selector for a spec ``training.checkpointing`` value (or a callable)."""
    if callable(value):
        return value
    if value == "none":
        return lambda i: False
    if value == "every_layer":
        return lambda i: True
    every = getattr(value, "every", None)
    if isinstance(every, int) and every >= 1:
        return lambda i: i % every == 0
    layers = getattr(value, "layers", None)
    if layers is not None:
        chosen = frozenset(layers)
        return lambda i: i in chosen
    from blueprint.errors import BlueprintError

    raise BlueprintError(f"unknown checkpointing policy {value!r}",
                         "use 'none', 'every_layer', {every: K} or {layers: [i, ...]}")


def policy_label(value: Any) -> str:
    """A short label for a spec policy value: none, every_layer, every:2, layers:0,3."""
    if isinstance(value, str):
        return value
    if getattr(value, "every", None) is not None:
        return f"every:{value.every}"
    return "layers:" + ",".join(map(str, value.layers))
