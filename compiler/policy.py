"""Checkpoint policies as layer selectors. Imports no torch (the cost model uses it too).

A policy is a function ``(layer_index) -> bool``. ``policy_from_spec`` turns the spec's
``training.checkpointing`` value into one: ``none``, ``every_layer``, ``{every: k}`` (layers 0,
k, 2k, ...) or ``{layers: [...]}``; a callable is returned as is. ``{memory_budget: SIZE}``
depends on the batch and sequence length a step runs: ``resolve_policy`` turns it into the
layer list ``compiler.memory_budget.choose_layers`` picks, which is then an ordinary policy.
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

    if getattr(value, "memory_budget", None) is not None:
        raise BlueprintError("a memory_budget policy depends on the batch and sequence length",
                             "resolve it first with compiler.policy.resolve_policy(spec, value, batch=, seq_len=)")
    raise BlueprintError(f"unknown checkpointing policy {value!r}",
                         "use 'none', 'every_layer', {every: K}, {layers: [i, ...]} or {memory_budget: SIZE}")


def resolve_policy(spec: Any, value: Any, *, batch: int, seq_len: int) -> Any:
    """``value`` itself, or for ``{memory_budget: SIZE}`` the chosen layers (a value with
    ``.layers``; empty when nothing needs recomputing) for one forward at batch x seq_len.

    Raises:
        BlueprintError: a budget that even every-layer recomputation cannot meet.
    """
    budget = getattr(value, "memory_budget", None)
    if budget is None:
        return value
    from compiler.memory_budget import choose_layers

    return choose_layers(spec, budget, batch=batch, seq_len=seq_len)


def policy_label(value: Any) -> str:
    """A short label for a spec policy value: none, every_layer, every:2, layers:0,3."""
    if isinstance(value, str):
        return value
    if getattr(value, "every", None) is not None:
        return f"every:{value.every}"
    if getattr(value, "memory_budget", None) is not None:
        from compiler.memory_budget import human

        return f"memory_budget:{human(value.memory_budget).replace(' ', '')}"
    return "layers:" + ",".join(map(str, value.layers))
