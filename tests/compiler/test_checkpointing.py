"""Activation checkpointing: a graph pass that really recomputes, changes no gradient, and
cuts the bytes saved for backward; the cost model's estimate tracks the measurement.

| check                                              | threshold                     |
|----------------------------------------------------|-------------------------------|
| grads with vs without checkpointing (dropout on)   | max |diff| <= 1e-6            |
| saved bytes, gpt2 (vocab 256), seq 512, every_layer | at least 5x fewer than none  |
| cost model activation bytes vs measurement         | within 15%                    |
"""

from __future__ import annotations

import pytest
import torch
import torch.utils.checkpoint

from compiler import compile_spec
from compiler.cost import activation_bytes
from compiler.passes import apply_checkpointing, checkpointed, strip_checkpointing
from helpers import TINY, load, make_inputs
from memory import saved_bytes
from test_parity import VARIANTS


def grads(gm, feeds, seed=0):
    gm.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # the same dropout masks in both runs
    out = gm(*feeds.values())
    sum(v.float().pow(2).mean() for v in out.values()).backward()
    return {n: p.grad.clone() for n, p in gm.named_parameters()}


@pytest.mark.parametrize("name", TINY)
def test_gradients_equal_with_and_without_checkpointing(name):
    spec = load(name)  # dropout as the spec says: RNG state must be replayed exactly
    gm = compile_spec(spec, checkpointing=False).train()
    feeds = make_inputs(spec, 2, 10, pad=[0, 3])
    plain = grads(gm, feeds)
    apply_checkpointing(gm, "every_layer")
    assert "checkpointed" in gm.code
    ckpt = grads(gm, feeds)
    for n in plain:
        assert (plain[n] - ckpt[n]).abs().max().item() <= 1e-6, n


def test_backward_recomputes_checkpointed_layers_only():
    """A forward hook on each layer counts its runs. torch's non-reentrant checkpoint stops a
    recomputation as soon as the tensors backward needs exist ("early stop"), before the
    layer's own forward returns, so the layer-level hook is counted with early stop off; the
    attention inside the layer shows the recomputation either way."""
    spec = load("mistral-tiny")  # training.checkpointing: {every: 2} -> layer 0 only
    gm = compile_spec(spec).train()
    calls = {"layer0": 0, "layer1": 0, "attn0": 0}

    def count(key):
        return lambda *args: calls.__setitem__(key, calls[key] + 1)

    gm.layers.get_submodule("0").register_forward_hook(count("layer0"))
    gm.layers.get_submodule("1").register_forward_hook(count("layer1"))
    gm.layers.get_submodule("0").attn.register_forward_hook(count("attn0"))
    feeds = make_inputs(spec, 2, 6)
    gm(*feeds.values())["logits"].sum().backward()
    assert calls == {"layer0": 1, "layer1": 1, "attn0": 2}
    with torch.utils.checkpoint.set_checkpoint_early_stop(False):
        gm(*feeds.values())["logits"].sum().backward()
    assert calls == {"layer0": 3, "layer1": 2, "attn0": 4}  # layer 0 ran twice, layer 1 once


def test_checkpointing_is_a_no_op_in_eval_and_no_grad():
    """Early stop off, so a recomputation would reach the layer's forward hook."""
    spec = load("gpt2-tiny")  # training.checkpointing: every_layer
    gm = compile_spec(spec)
    calls = []
    gm.layers.get_submodule("0").register_forward_hook(lambda *a: calls.append(1))
    feeds = make_inputs(spec, 1, 5)
    with torch.utils.checkpoint.set_checkpoint_early_stop(False):
        with torch.no_grad():
            gm.train()(*feeds.values())
        gm.eval()(*feeds.values())["logits"].sum().backward()
        assert len(calls) == 2  # two forwards, no recomputation
        gm.train()(*feeds.values())["logits"].sum().backward()
    assert len(calls) == 4  # training does recompute: the hook can see it


def test_policy_selects_layers_and_strip_restores_the_graph():
    spec = load("modernbert-tiny")
    gm = compile_spec(spec, checkpointing=False)
    before = gm.code
    assert apply_checkpointing(gm, "none").modified is False
    assert gm.code == before
    from blueprint.spec.schema import EveryK, LayerList

    assert apply_checkpointing(gm, EveryK(every=2)).modified is True
    wrapped = [n.meta["blueprint.layer"] for n in gm.graph.nodes if n.target is checkpointed]
    assert wrapped == [0, 2]
    flagged = [n.meta["blueprint.layer"] for n in gm.graph.nodes if n.meta.get("blueprint.checkpointed")]
    assert flagged == [0, 2]
    assert apply_checkpointing(gm, EveryK(every=2)).modified is False  # already wrapped: nothing to do
    assert strip_checkpointing(gm).modified is True
    assert gm.code == before and "checkpointed" not in gm.code
    assert not any("blueprint.checkpointed" in n.meta for n in gm.graph.nodes)
    assert strip_checkpointing(gm).modified is False
    apply_checkpointing(gm, LayerList(layers=[1, 3]))
    assert [n.meta["blueprint.layer"] for n in gm.graph.nodes if n.target is checkpointed] == [1, 3]
    apply_checkpointing(strip_checkpointing(gm).graph_module, lambda i: i == 2)  # a policy is a function
    assert [n.meta["blueprint.layer"] for n in gm.graph.nodes if n.target is checkpointed] == [2]


def test_passes_refuse_a_graph_without_the_tracer_metadata():
    """Passes assert what they require: a layer node stripped of its metadata is named."""
    spec = load("llama-tiny")
    gm = compile_spec(spec, checkpointing=False)
    node = next(n for n in gm.graph.nodes if n.op == "call_module" and n.target == "layers.1")
    node.meta.pop("blueprint.kind")
    with pytest.raises(AssertionError, match=node.name):
        apply_checkpointing(gm, "every_layer")


def test_stripped_graph_computes_the_same():
    spec = load("llama-tiny")
    gm = compile_spec(spec).eval()
    feeds = make_inputs(spec, 2, 6)
    want = gm(*feeds.values())["logits"]
    got = strip_checkpointing(gm).graph_module(*feeds.values())["logits"]
    assert torch.equal(want, got)


def test_gpt2_saved_activations_drop_5x_and_match_the_cost_model():
    """GPT-2 small (12 layers, 768 wide, dropout 0.1), vocabulary cut to 256, batch 1, seq 512."""
    spec = load("gpt2").model_copy(update={"vocab_size": 256})
    gm = compile_spec(spec, checkpointing=False).train()
    s = 512
    feeds = (torch.randint(0, 256, (1, s)), torch.ones(1, s, dtype=torch.int64), torch.arange(s)[None])
    plain, _ = saved_bytes(gm, feeds)
    apply_checkpointing(gm, "every_layer")
    ckpt, out = saved_bytes(gm, feeds)
    assert plain >= 5 * ckpt, (plain, ckpt)
    for policy, measured in (("none", plain), ("every_layer", ckpt)):
        estimate = activation_bytes(spec, policy, batch=1, seq_len=s)
        assert abs(estimate - measured) <= 0.15 * measured, (policy, estimate, measured)


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("policy", ["none", "every_layer", "every:2"])
def test_cost_model_tracks_measured_activations_on_tiny_specs(name, policy):
    from blueprint.spec.schema import EveryK

    value = EveryK(every=2) if policy == "every:2" else policy
    spec = load(name)
    gm = compile_spec(spec, checkpointing=False).train()
    apply_checkpointing(gm, value)
    measured, _ = saved_bytes(gm, tuple(make_inputs(spec, 2, 24).values()))
    estimate = activation_bytes(spec, value, batch=2, seq_len=24)
    assert abs(estimate - measured) <= 0.15 * measured, (estimate, measured)


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_cost_model_tracks_measured_activations_on_variants(name, dropout):
    """Every mechanism variant; attention dropout switches SDPA from the fused to the math path."""
    spec = VARIANTS[name]
    spec = spec.model_copy(update={"dropout": spec.dropout.model_copy(
        update={"embed": dropout, "attention": dropout, "residual": dropout})})
    gm = compile_spec(spec, checkpointing=False).train()
    measured, _ = saved_bytes(gm, tuple(make_inputs(spec, 2, 24).values()))
    estimate = activation_bytes(spec, "none", batch=2, seq_len=24)
    assert abs(estimate - measured) <= 0.15 * measured, (estimate, measured)


@pytest.mark.parametrize("first", ["compiler.passes.checkpointing", "compiler.trace", "compiler.passes"])
def test_tracer_and_passes_import_in_any_order(first):
    """Metadata keys live in the leaf compiler.graph_meta: no import cycle between the tracer
    and the checkpointing pass, whichever is imported first."""
    import subprocess
    import sys

    code = f"import {first}; import compiler.trace, compiler.passes.checkpointing, compiler.graph_meta"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
