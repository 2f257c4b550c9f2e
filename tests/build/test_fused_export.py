"""The fused export (compiler/export/fuse) against the plain export, in onnxruntime.

Structure: each fusion is present in the expected number (op types and counts), and the plain
export's per-layer patterns are gone. Numbers: the fused graph and the plain (``portable``)
export of the same weights agree to 1e-5 (observed ~2e-7) on left-padded batches, decode steps,
multi-token chunks after a past at batch > 1, and past a sliding window; both run in
onnxruntime, but the plain graph is an independent path (torch's exporter, opset-23 ops). A
spec the emitter does not cover falls back to the plain export, naming the reason.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnxruntime as ort
import pytest
import torch
from buildfixtures import SPECS, load_tiny, vary_norms_and_biases

import blueprint
from compiler.export import fuse, onnx_export
from compiler.export.build import build, default_compile
from compiler.export.io import Shape, make_inputs, output_names

TOLERANCE = 1e-5

# partial rotary, MQA, GeGLU, a custom softmax scale, and one layer with its own window and RoPE base
VARIETY = """
name: fused-variety
vocab_size: 256
max_seq_len: 96
embed_dim: 64
num_layers: 3
positional: {kind: rope, rope_base: 10000.0, rotary_fraction: 0.5}
norm: {kind: rmsnorm, norm_eps: 1.0e-6}
block:
  attention: {num_heads: 4, num_kv_heads: 1, softmax_scale: 0.2}
  ffn: {kind: geglu, hidden_dim: 96, activation: gelu}
layers:
  - index: 1
    set: {attention: {window: 5, rope_base: 500.0}}
"""


def _spec(name, tmp_path):
    if name == "fused-variety":
        path = tmp_path / "variety.yaml"
        path.write_text(VARIETY)
        return blueprint.load_spec(path)
    return load_tiny(name)


def _sessions(spec, tmp_path):
    torch.manual_seed(0)
    module = default_compile(spec, kv_cache=True).eval()
    vary_norms_and_biases(module)
    out = {}
    for tag, fused in (("plain", False), ("fused", True)):
        (tmp_path / tag).mkdir()
        model = onnx_export.export_model(module, spec, kv_cache=True, fused=fused)
        onnx_export.save_model(model, tmp_path / tag, metadata={})
        out[tag] = (model, ort.InferenceSession(str(tmp_path / tag / "model.onnx"), providers=["CPUExecutionProvider"]))
    return out


@pytest.mark.parametrize("name", ["llama-tiny", "mistral-tiny", "gpt2-tiny", "fused-variety"])
def test_fused_export_matches_the_plain_export(name, tmp_path):
    spec = _spec(name, tmp_path)
    assert fuse.why_not(spec, kv_cache=True, dtype="fp32") is None
    sessions = _sessions(spec, tmp_path)
    plain, fused = sessions["plain"][1], sessions["fused"][1]
    rng = np.random.default_rng(3)
    names = output_names(spec, True)
    cases = [(Shape(3, 9, 0), [0, 4, 1]), (Shape(2, 1, 11), [0, 3]), (Shape(2, 3, 11), [0, 3]),
             (Shape(1, 30, 0), [0]), (Shape(2, 1, 30), [0, 5]), (Shape(2, 4, 20), [2, 0])]
    for shape, pad in cases:
        feeds = make_inputs(spec, shape, kv_cache=True, rng=rng, pad=pad)
        for n, a, b in zip(names, plain.run(names, feeds), fused.run(names, feeds)):
            assert a.shape == b.shape, (n, shape)
            assert np.abs(a - b).max() <= TOLERANCE, (n, shape, pad, float(np.abs(a - b).max()))


def test_fused_structure_llama(tmp_path):
    spec = load_tiny("mistral-tiny")  # GQA 4/2, window 8
    model, _ = _sessions(spec, tmp_path)["fused"]
    ops = Counter(n.op_type for n in model.graph)
    L = spec.num_layers
    assert ops["GroupQueryAttention"] == L
    # RMSNorm as Add + SimplifiedLayerNormalization (the Skip form rounds worse: emit.py); one
    # more for the emitted tail's final norm
    assert ops["SkipSimplifiedLayerNormalization"] == 0 and ops["SimplifiedLayerNormalization"] == 2 * L + 1
    assert ops["RotaryEmbedding"] == 0 and ops["Split"] == L  # RoPE inside GQA; only gate|up is split
    assert ops["MatMul"] == 4 * L + 1  # packed qkv, o, packed gate/up, down; the head
    assert ops["Attention"] == 0 and ops["RMSNormalization"] == 0
    gqa = [n for n in model.graph if n.op_type == "GroupQueryAttention"]
    assert {n.attributes["local_window_size"].value for n in gqa} == {8}
    assert {(n.attributes["num_heads"].value, n.attributes["kv_num_heads"].value) for n in gqa} == {(4, 2)}
    assert {n.attributes["do_rotary"].value for n in gqa} == {1}
    # the packed projection goes in whole (key and value empty), rotated at the position ids
    assert all(n.inputs[1] is None and n.inputs[2] is None and n.inputs[9].name == "position_ids" for n in gqa)
    assert model.opset_imports["com.microsoft"] == 1
    # no copy of the cache in the graph: the only Concats pack weights (initializers)
    concat = [n for n in model.graph if n.op_type == "Concat"]
    assert len(concat) == 2 * L and all(v.is_initializer() for n in concat for v in n.inputs)


def test_fused_structure_gpt2(tmp_path):
    spec = load_tiny("gpt2-tiny")  # LayerNorm with bias, biased projections, learned positions
    model, _ = _sessions(spec, tmp_path)["fused"]
    ops = Counter(n.op_type for n in model.graph)
    L = spec.num_layers
    assert ops["GroupQueryAttention"] == L and ops["SkipLayerNormalization"] == 2 * L - 1
    assert ops["RotaryEmbedding"] == 0 and ops["FastGelu"] == L  # gelu_tanh
    assert ops["MatMul"] == 4 * L + 1 and ops["Split"] == 0  # packed QKV into GQA, MLP unpacked
    assert all("do_rotary" not in n.attributes for n in model.graph if n.op_type == "GroupQueryAttention")


def test_fused_structure_partial_rotary_the_kernel_refuses(tmp_path):
    """rotary_dim 8 (cos/sin width 4, not a multiple of 8): Split + RotaryEmbedding on q and k."""
    spec = _spec("fused-variety", tmp_path)
    model, _ = _sessions(spec, tmp_path)["fused"]
    ops = Counter(n.op_type for n in model.graph)
    L = spec.num_layers
    assert ops["RotaryEmbedding"] == 2 * L and ops["Split"] == 2 * L  # q|k|v and gate|up
    rotary = [n for n in model.graph if n.op_type == "RotaryEmbedding"]
    assert {n.attributes["rotary_embedding_dim"].value for n in rotary} == {8}


def test_logits_to_keep_gives_the_last_positions(tmp_path):
    spec = load_tiny("llama-tiny")
    _, session = _sessions(spec, tmp_path)["fused"]
    feeds = make_inputs(spec, Shape(2, 7, 4), kv_cache=True, rng=np.random.default_rng(0), pad=[0, 2])
    (full,) = session.run(["logits"], feeds)
    assert full.shape == (2, 7, spec.vocab_size)  # default: every position (Decoder.forward, scoring)
    for keep in (1, 3):
        (last,) = session.run(["logits"], {**feeds, fuse.KEEP: np.array(keep, dtype=np.int64)})
        assert np.array_equal(last, full[:, -keep:])


@pytest.mark.parametrize("change, reason", [
    (lambda d: d.update(positional={"kind": "alibi"}), "positional.kind is alibi"),
    (lambda d: d["block"].update(norm_placement="post"), "norm_placement post"),
    (lambda d: d["block"]["attention"].update(qk_norm=True), "qk_norm"),
    (lambda d: d["block"].update(residual="parallel"), "residual parallel"),
])
def test_specs_the_emitter_does_not_cover_are_named(change, reason):
    spec = load_tiny("llama-tiny")
    data = spec.model_dump()
    change(data)
    changed = type(spec).model_validate(data)
    assert reason in fuse.why_not(changed, kv_cache=True, dtype="fp32")
    assert "fp16" in fuse.why_not(spec, kv_cache=True, dtype="fp16")
    assert "encoder" in fuse.why_not(load_tiny("bert-tiny"), kv_cache=False, dtype="fp32")


def test_a_spec_field_the_emitter_does_not_know_refuses_fusion(monkeypatch):
    """A field added to the spec later (soft-capping, ...) is not silently ignored: a non-default
    value the emitter does not read makes the build fall back."""
    spec = load_tiny("mistral-tiny")
    monkeypatch.setitem(fuse.eligible.KNOWN, "attention", fuse.eligible.KNOWN["attention"] - {"window"})
    assert "attention.window" in fuse.why_not(spec, kv_cache=True, dtype="fp32")


def test_builds_are_fused_by_default_portable_on_request_and_fallbacks_say_why(tmp_path, capsys):
    from compiler.export.build import Progress

    fused = build(SPECS / "llama-tiny.yaml", tmp_path / "f", verify=False)
    portable = build(SPECS / "llama-tiny.yaml", tmp_path / "p", verify=False, portable=True)
    assert fused.manifest["export"] == "fused" and portable.manifest["export"] == "plain"
    import onnx

    domains = {n.domain for n in onnx.load(str(tmp_path / "p" / "model.onnx"), load_external_data=False).graph.node}
    assert domains <= {"", "ai.onnx"}  # plain ONNX: no contrib ops
    post = build(SPECS / "gpt-tiny.yaml", tmp_path / "g", verify=False, progress=Progress())
    assert post.manifest["export"] == "plain"
    assert "plain ONNX export, not the fused one: the fused layer does not emit layer 0: norm_placement post" \
        in capsys.readouterr().err
