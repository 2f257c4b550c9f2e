"""The ``{memory_budget: SIZE}`` checkpoint policy: which layers to recompute. Imports no torch.

Checkpointing layer i trades its saved activations (``cost.layer_activation_bytes``) for its
input alone, at the price of running its forward again in backward
(``cost.layer_flops_per_token``). Given a budget for the bytes one training forward saves (as
``cost.activation_bytes`` counts them, for the batch and sequence length a process actually
runs), ``choose_layers`` finds the set of layers with the least recompute whose savings bring
the total under the budget: a 0/1 knapsack. Layers with identical (saving, cost) are
interchangeable, so it is solved exactly over how many of each kind of layer to take; only
when a model has very many distinct kinds of layer does it fall back to taking the cheapest
recompute per byte first and then dropping any layer the budget no longer needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import TYPE_CHECKING

from blueprint.errors import BlueprintError
from compiler.cost import DTYPE_BYTES, activation_bytes, layer_activation_bytes, layer_flops_per_token

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec

_EXACT_LIMIT = 200_000  # count vectors enumerated before falling back to the greedy choice


@dataclass(frozen=True)
class Chosen:
    """A concrete ``{layers: [...]}`` policy (``policy_from_spec`` reads ``.layers``); empty
    when the budget needs no recompute (then it behaves as ``none``)."""

    layers: tuple[int, ...]
    saved_bytes: int  # what a forward then saves for backward, by the cost model
    recompute_flops: float  # extra forward FLOPs per step

    def selects(self, i: int) -> bool:
        return i in self.layers


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def choose_layers(spec: "ModelSpec", budget: int, *, batch: int, seq_len: int) -> Chosen:
    """The layers to recompute so that one forward at ``batch`` x ``seq_len`` saves at most
    ``budget`` bytes for backward, with the least recompute.

    Raises:
        BlueprintError: the budget is below what recomputing every layer still saves.
    """
    blocks = spec.resolved_layers()
    tokens, width = batch * seq_len, spec.embed_dim * DTYPE_BYTES[spec.dtype]
    uncheckpointed = activation_bytes(spec, "none", batch=batch, seq_len=seq_len)
    if uncheckpointed <= budget:
        return Chosen((), uncheckpointed, 0.0)
    floor = activation_bytes(spec, "every_layer", batch=batch, seq_len=seq_len)
    if floor > budget:
        raise BlueprintError(
            f"memory_budget {human(budget)} cannot be met at batch {batch} x seq_len {seq_len}: "
            f"even recomputing every layer keeps {human(floor)} for backward",
            hint="raise training.checkpointing.memory_budget, or lower --batch-size (per process) or --seq-len")
    # Any checkpointed layer also keeps the mask (and positions) for recomputation: the first
    # layer's saving pays for it, so the need is measured against the total with it.
    savings = [_saving(spec, b, batch, seq_len, tokens * width) for b in blocks]
    first = activation_bytes(spec, _Layers((0,)), batch=batch, seq_len=seq_len)
    overhead = first - (uncheckpointed - savings[0])
    need = uncheckpointed + overhead - budget
    costs = [layer_flops_per_token(spec, b, seq_len) * tokens for b in blocks]
    layers = _exact(savings, costs, need)
    if layers is None:
        layers = _greedy(savings, costs, need)
    total = activation_bytes(spec, _Layers(layers), batch=batch, seq_len=seq_len)
    assert total <= budget, (total, budget)  # the knapsack's arithmetic is the cost model's
    return Chosen(layers, total, sum(costs[i] for i in layers))


@dataclass(frozen=True)
class _Layers:
    layers: tuple[int, ...]


def _saving(spec, block, batch: int, seq_len: int, layer_input: int) -> int:
    return layer_activation_bytes(spec, block, batch, seq_len) - layer_input


def _exact(savings: list[int], costs: list[float], need: int) -> tuple[int, ...] | None:
    """Least-cost set over counts of identical layers, or None when there are too many kinds."""
    kinds: dict[tuple[int, float], list[int]] = {}
    for i, key in enumerate(zip(savings, costs)):
        kinds.setdefault(key, []).append(i)
    groups = list(kinds.items())
    size = 1
    for _, members in groups:
        size *= len(members) + 1
    if size > _EXACT_LIMIT:
        return None
    best: tuple[float, int, tuple[int, ...]] | None = None
    for counts in product(*(range(len(m) + 1) for _, m in groups)):
        saved = sum(c * key[0] for c, (key, _) in zip(counts, groups))
        if saved < need:
            continue
        cost = sum(c * key[1] for c, (key, _) in zip(counts, groups))
        chosen = tuple(sorted(i for c, (_, m) in zip(counts, groups) for i in m[:c]))
        candidate = (cost, len(chosen), chosen)
        if best is None or candidate < best:
            best = candidate
    assert best is not None  # every layer meets the need (checked by the caller)
    return best[2]


def _greedy(savings: list[int], costs: list[float], need: int) -> tuple[int, ...]:
    order = sorted(range(len(savings)), key=lambda i: (costs[i] / max(savings[i], 1), i))
    chosen: list[int] = []
    for i in order:
        if sum(savings[j] for j in chosen) >= need:
            break
        chosen.append(i)
    for i in sorted(chosen, key=lambda j: -costs[j]):  # drop what the budget no longer needs
        rest = [j for j in chosen if j != i]
        if sum(savings[j] for j in rest) >= need:
            chosen = rest
    return tuple(sorted(chosen))
