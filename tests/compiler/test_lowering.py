"""Lowering and tracing: parameter names and shapes (contract 3), I/O (contract 4), graph
readability and metadata, initialisation, safetensors round trip, training for every family."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from compiler import compile_spec
from compiler.naming import parameter_count, parameter_shapes
from compiler.passes import strip_checkpointing
from compiler.signature import input_names, output_names
from helpers import ALL, TINY, load, make_inputs, variant


@pytest.mark.parametrize("name", ALL)
def test_state_dict_matches_canonical_names_on_meta(name):
    spec = load(name)
    gm = compile_spec(spec, device="meta")
    shapes = parameter_shapes(spec)
    state = {k: tuple(v.shape) for k, v in gm.state_dict().items()}
    tied = {"head.proj.weight", "head.decoder.weight"} if spec.tie_embeddings else set()
    assert {k: v for k, v in state.items() if k not in tied} == shapes
    assert [k for k in state if k not in tied] == list(shapes)  # canonical order too
    assert sum(p.numel() for p in gm.parameters()) == parameter_count(spec)  # tied counted once
    assert not list(gm.buffers())


@pytest.mark.parametrize("name", ["gpt2-tiny", "bert-tiny"])
def test_tied_weights_are_one_parameter(name):
    spec = load(name)
    gm = compile_spec(spec)
    named = dict(gm.named_parameters(remove_duplicate=False))
    head = "head.proj.weight" if spec.is_decoder else None
    if head:
        assert named[head] is named["embed.tokens.weight"]
    masked = variant(tie_embeddings=True, block={"attention": {"causal": False}},
                     head={"kind": "masked_lm"})
    m = compile_spec(masked)
    assert m.head.decoder.weight is m.embed.tokens.weight


@pytest.mark.parametrize("name", TINY)
def test_io_contract(name):
    spec = load(name)
    gm = compile_spec(spec)
    placeholders = [n.name for n in gm.graph.nodes if n.op == "placeholder"]
    assert placeholders == [n.replace(".", "_") for n in input_names(spec)]
    feeds = make_inputs(spec, 2, 5)
    assert list(feeds) == input_names(spec)
    out = gm(*feeds.values())
    assert list(out) == output_names(spec)
    if spec.is_decoder:
        assert out["logits"].shape == (2, 5, spec.vocab_size)
    else:
        assert out["last_hidden_state"].shape == (2, 5, spec.embed_dim)


def test_graph_reads_as_the_forward_pass():
    spec = load("modernbert-tiny")
    gm = compile_spec(spec, checkpointing=False)
    calls = [n for n in gm.graph.nodes if n.op == "call_module"]
    assert [n.target for n in calls] == ["embed"] + [f"layers.{i}" for i in range(4)] + ["final_norm", "head"]
    assert [n.meta["blueprint.kind"] for n in calls] == ["embed"] + ["block"] * 4 + ["final_norm", "head"]
    assert [n.meta.get("blueprint.layer") for n in calls][1:5] == [0, 1, 2, 3]
    assert len([n for n in gm.graph.nodes if n.op == "call_function"]) == 0
    assert "self.embed(" in gm.code and "self.head(" in gm.code
    gm.graph.lint()


def test_cached_graph_names_layer_outputs():
    gm = compile_spec(load("llama-tiny"), kv_cache=True)
    assert "present_1_value = " in gm.code and "hidden_0 = " in gm.code
    kinds = {n.name: n.meta.get("blueprint.kind") for n in gm.graph.nodes}
    assert kinds["present_0_key"] == "block_output"


def test_init_follows_the_spec_and_is_seeded():
    spec = load("gpt2-tiny")  # std 0.02, scaled_residual, 2 layers
    gm = compile_spec(spec)
    sd = gm.state_dict()
    assert math.isclose(sd["layers.0.attn.q_proj.weight"].std().item(), 0.02, rel_tol=0.1)
    assert math.isclose(sd["layers.1.ffn.down_proj.weight"].std().item(), 0.02 / math.sqrt(4), rel_tol=0.1)
    assert math.isclose(sd["layers.0.attn.o_proj.weight"].std().item(), 0.01, rel_tol=0.1)
    assert torch.all(sd["layers.0.attn.q_proj.bias"] == 0) and torch.all(sd["layers.0.attn_norm.weight"] == 1)
    again = compile_spec(spec).state_dict()
    assert all(torch.equal(sd[k], again[k]) for k in sd)
    other = compile_spec(spec.model_copy(update={"init": spec.init.model_copy(update={"seed": 1})})).state_dict()
    assert not torch.equal(sd["embed.tokens.weight"], other["embed.tokens.weight"])


@pytest.mark.parametrize("scaled", [True, False])
def test_init_std_reaches_every_weight(scaled):
    """A non-default std, 3 layers: every matrix and embedding table is drawn with the spec's
    std; only o_proj and down_proj are divided by sqrt(2 * num_layers), and only when asked."""
    spec = variant(num_layers=3, embed_dim=64, positional={"kind": "learned"},
                   block={"ffn": {"hidden_dim": 128}}, tie_embeddings=False,
                   init={"std": 0.05, "scaled_residual": scaled, "seed": 3})
    sd = compile_spec(spec).state_dict()
    residual = 0.05 / math.sqrt(6) if scaled else 0.05
    for name, t in sd.items():
        if t.ndim != 2:
            continue
        want = residual if name.endswith(("o_proj.weight", "down_proj.weight")) else 0.05
        assert math.isclose(t.std().item(), want, rel_tol=0.1), (name, t.std().item(), want)
        assert abs(t.mean().item()) < 0.1 * want, name


@pytest.mark.parametrize("site", ["embed", "attention", "residual"])
def test_each_dropout_site_is_applied_in_training(site):
    """Each dropout rate on its own makes training forwards differ; eval stays deterministic."""
    rates = {"embed": 0.0, "attention": 0.0, "residual": 0.0, site: 0.5}
    spec = variant(dropout=rates)
    gm = compile_spec(spec).train()
    feeds = make_inputs(spec, 2, 6)
    torch.manual_seed(0)
    a, b = gm(*feeds.values())["logits"], gm(*feeds.values())["logits"]
    assert not torch.equal(a, b), f"{site} dropout changed nothing in training"
    gm.eval()
    assert torch.equal(gm(*feeds.values())["logits"], gm(*feeds.values())["logits"])


@pytest.mark.parametrize("name", TINY)
def test_safetensors_round_trip(name, tmp_path):
    spec = load(name)
    gm = compile_spec(spec).eval()
    canonical = parameter_shapes(spec)
    state = {k: v for k, v in gm.state_dict().items() if k in canonical}  # tied duplicates dropped
    save_file(state, tmp_path / "w.safetensors")
    fresh = compile_spec(spec.model_copy(update={"init": spec.init.model_copy(update={"seed": 7})})).eval()
    missing, unexpected = fresh.load_state_dict(load_file(tmp_path / "w.safetensors"), strict=False)
    assert not unexpected and set(missing) <= {"head.proj.weight", "head.decoder.weight"}
    feeds = make_inputs(spec, 2, 6)
    a, b = gm(*feeds.values()), fresh(*feeds.values())
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kv_cache", [False, True])
def test_torch_save_round_trip_keeps_graph_and_metadata(kv_cache, tmp_path):
    """torch.save pickles a GraphModule as its code and re-traces it on load; the loaded graph
    computes the same, still checkpoints, and its nodes carry the same blueprint metadata."""
    spec = load("mistral-tiny")  # checkpointing {every: 2}: layer 0 wrapped, layer 1 not
    gm = compile_spec(spec, kv_cache=kv_cache)
    torch.save(gm, tmp_path / "gm.pt")
    loaded = torch.load(tmp_path / "gm.pt", weights_only=False)
    assert loaded.code == gm.code
    meta = lambda g: [(n.name, {k: v for k, v in n.meta.items() if k.startswith("blueprint.")})  # noqa: E731
                      for n in g.graph.nodes]
    assert meta(loaded) == meta(gm)
    feeds = make_inputs(spec, 2, 5)
    args = list(feeds.values())
    if kv_cache:
        args += [torch.zeros(2, 2, 0, 16)] * (2 * spec.num_layers)
    gm.eval(), loaded.eval()
    assert all(torch.equal(a, b) for a, b in zip(gm(*args).values(), loaded(*args).values()))
    strip_checkpointing(loaded)
    assert "checkpointed" not in loaded.code


@pytest.mark.parametrize("name", TINY)
def test_every_family_trains(name):
    spec = load(name)
    gm = compile_spec(spec).train()
    opt = torch.optim.SGD(gm.parameters(), lr=0.1)
    feeds = make_inputs(spec, 2, 8, pad=[0, 2])
    out = gm(*feeds.values())
    if spec.is_decoder:
        logits = out["logits"][:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, spec.vocab_size), feeds["input_ids"][:, 1:].reshape(-1))
    else:
        loss = sum(v.pow(2).mean() for v in out.values())
    loss.backward()
    for n, p in gm.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n
    before = gm.state_dict()["embed.tokens.weight"].clone()
    opt.step()
    assert not torch.equal(before, gm.state_dict()["embed.tokens.weight"])


def test_dropout_is_active_only_in_training():
    spec = load("gpt2-tiny")  # dropout 0.1 everywhere
    gm = compile_spec(spec)
    feeds = make_inputs(spec, 1, 6)
    gm.train()
    torch.manual_seed(0)
    a = gm(*feeds.values())["logits"]
    b = gm(*feeds.values())["logits"]
    assert not torch.equal(a, b)
    gm.eval()
    assert torch.equal(gm(*feeds.values())["logits"], gm(*feeds.values())["logits"])


def test_light_modules_import_no_torch():
    code = ("import sys, compiler, compiler.naming, compiler.signature, compiler.cost, compiler.policy; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
