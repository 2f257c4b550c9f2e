"""The {memory_budget: SIZE} checkpoint policy: the layers it recomputes fit the budget as
measured with saved_tensors_hooks, with the least recompute (no subset of cheaper recompute
fits: checked against brute force and against measurement) and never more than every layer."""

from __future__ import annotations

import itertools
import random

import pytest
import torch
from helpers import BASE, make_inputs, merge
from memory import saved_bytes

from blueprint.errors import BlueprintError
from blueprint.spec.schema import ModelSpec
from blueprint.spec.sections import LayerList, TrainingSpec
from compiler import compile_spec
from compiler.memory_budget import _exact, _greedy, choose_layers
from compiler.cost import activation_bytes, layer_flops_per_token

B, S = 2, 32


def spec_with(budget, **update) -> ModelSpec:
    data = merge(merge(BASE, {"num_layers": 4}), update)
    data["training"] = {"checkpointing": {"memory_budget": budget}}
    return ModelSpec.model_validate(data)


def with_policy(spec: ModelSpec, value) -> ModelSpec:
    return spec.model_copy(update={"training": TrainingSpec(checkpointing=value)})


def measured(spec: ModelSpec) -> tuple[int, int]:
    """(bytes a training forward saves for backward, number of checkpointed layers)."""
    torch.manual_seed(0)
    gm = compile_spec(spec, batch=B, seq_len=S).train()
    count = sum(bool(n.meta.get("blueprint.checkpointed")) for n in gm.graph.nodes)
    size, _ = saved_bytes(gm, tuple(make_inputs(spec, B, S).values()))
    return size, count


class _L:
    """A layer-list policy value (what policy_from_spec reads)."""

    def __init__(self, layers):
        self.layers = tuple(layers)


def test_budget_between_levels_recomputes_the_fewest_layers_that_fit():
    probe = spec_with(1)
    levels = [activation_bytes(probe, _L(range(k)), batch=B, seq_len=S) for k in range(5)]
    assert levels == sorted(levels, reverse=True)
    for k in (1, 2, 3, 4):
        budget = (levels[k] + levels[k - 1]) // 2  # fits k recomputed layers, not k - 1
        size, count = measured(spec_with(budget))
        assert count == k, (k, budget)
        assert size <= budget, (k, size, budget)
        # k - 1 layers, as measured, do not fit: less recompute is impossible
        fewer = with_policy(probe, LayerList(layers=list(range(k - 1))) if k > 1 else "none")
        assert measured(fewer)[0] > budget
    plain = measured(with_policy(probe, "none"))[0]
    assert measured(spec_with(1 << 40)) == (plain, 0)  # a generous budget recomputes nothing


def test_never_more_recompute_than_every_layer_and_unmeetable_budgets():
    spec = spec_with(1)
    floor = activation_bytes(spec, "every_layer", batch=B, seq_len=S)
    chosen = choose_layers(spec, floor, batch=B, seq_len=S)
    full = sum(layer_flops_per_token(spec, b, S) * B * S for b in spec.resolved_layers())
    assert chosen.layers == (0, 1, 2, 3) and chosen.recompute_flops == full
    with pytest.raises(BlueprintError, match="even recomputing every layer keeps"):
        choose_layers(spec, floor - 1, batch=B, seq_len=S)
    with pytest.raises(BlueprintError, match="cannot be met"):
        compile_spec(spec_with(floor - 1), batch=B, seq_len=S)


def test_uneven_layers_pick_the_cheapest_recompute_exactly():
    """Layers 0-1 have a 4x wider FFN (more memory and more FLOPs); layer 3 has a window."""
    spec = spec_with(1, layers=[{"range": [0, 2], "set": {"ffn": {"hidden_dim": 192}}},
                                {"index": 3, "set": {"attention": {"window": 4}}}])
    none = activation_bytes(spec, "none", batch=B, seq_len=S)
    floor = activation_bytes(spec, "every_layer", batch=B, seq_len=S)
    costs = [layer_flops_per_token(spec, b, S) * B * S for b in spec.resolved_layers()]
    for budget in range(floor, none, max(1, (none - floor) // 23)):
        chosen = choose_layers(spec, budget, batch=B, seq_len=S)
        feasible = [c for r in range(5) for c in itertools.combinations(range(4), r)
                    if activation_bytes(spec, _L(c), batch=B, seq_len=S) <= budget]
        best = min(sum(costs[i] for i in c) for c in feasible)
        assert chosen.recompute_flops == pytest.approx(best, rel=1e-12)
        assert activation_bytes(spec, _L(chosen.layers), batch=B, seq_len=S) <= budget


def test_greedy_fallback_meets_the_need():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 8)
        savings = [rng.randint(1, 100) for _ in range(n)]
        costs = [rng.uniform(1, 10) for _ in range(n)]
        need = rng.randint(1, sum(savings))
        greedy = _greedy(savings, costs, need)
        exact = _exact(savings, costs, need)
        assert sum(savings[i] for i in greedy) >= need
        assert sum(costs[i] for i in exact) <= sum(costs[i] for i in greedy) + 1e-9
        assert not any(sum(savings[j] for j in greedy if j != i) >= need for i in greedy)  # nothing spare


def test_explain_shows_the_choice(tmp_path, capsys):
    from blueprint.cli import main

    spec = spec_with(1)
    budget = (activation_bytes(spec, "none", batch=B, seq_len=S) +
              activation_bytes(spec, _L((0,)), batch=B, seq_len=S)) // 2
    path = tmp_path / "s.yaml"
    import yaml

    path.write_text(yaml.safe_dump({**merge(BASE, {"num_layers": 4}),
                                    "training": {"checkpointing": {"memory_budget": f"{budget}"}}}))
    assert main(["explain", str(path), "--batch", str(B), "--seq-len", str(S)]) == 0
    out = capsys.readouterr().out
    assert "recompute layers 0 (1 of 4)" in out and "memory_budget" in out
    assert main(["explain", str(path), "--batch", "64", "--seq-len", str(S)]) == 0
    assert "cannot be met" in capsys.readouterr().out
