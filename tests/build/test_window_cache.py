"""``blueprint build --window-cache``: sliding-window layers with GroupQueryAttention's
window-sized cache (blueprint/window_cache.py, compiler/export/fuse/window.py).

Structure: ``sliding_window_cache = 1`` on exactly the windowed layers, their past/present
axis named ``window_cache``, the manifest's per-layer window and capacity. Numbers: each
windowed layer's resident rows equal the last L(T) positions of the full-cache fused build's
present (the formula in the op's schema, evaluated independently here) to 1e-5, at every call
of a trajectory far past the capacity, on a left-padded batch, with prefills longer than C and
chunks after a past; the float64 gate passes and fails when it compares the wrong rows. Flags
where no bounded cache can apply are refused with the reason.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from buildfixtures import SPECS

import blueprint
from blueprint import cli
from blueprint.errors import BlueprintError
from blueprint.position_ids import position_ids_for
from blueprint.window_cache import WindowLayer, default_capacity, from_manifest, plan, resident
from compiler.export import verify as verify_mod
from compiler.export.build import build

TOLERANCE = 1e-5

# Gemma-2-like alternation: global layers 0 and 2, local (window 6) layers 1 and 3
LOCAL_GLOBAL = """
name: local-global-tiny
vocab_size: 256
max_seq_len: 128
embed_dim: 64
num_layers: 4
positional: {kind: rope, rope_base: 10000.0}
norm: {kind: rmsnorm, norm_eps: 1.0e-6}
block:
  attention: {num_heads: 4, num_kv_heads: 2}
  ffn: {kind: swiglu, hidden_dim: 128}
layers:
  - every: 2
    offset: 1
    set: {attention: {window: 6}}
tokenizer: {vocab_size: 250, bos_id: 1, eos_id: 2}
"""


def local_global_spec(tmp_path):
    path = tmp_path / "local-global-tiny.yaml"
    path.write_text(LOCAL_GLOBAL)
    return path


@pytest.fixture(scope="module")
def pair(tmp_path_factory, builds):
    """spec name -> (full-cache fused build, window-cache build), each built and verified once."""
    root = tmp_path_factory.mktemp("window")
    path = local_global_spec(root)
    return {"mistral-tiny": (builds("mistral-tiny"), builds("mistral-tiny+window")),
            path.stem: (build(path, root / "full"), build(path, root / "window", window_cache=True))}


def _reference_resident(total: int, c: int, w: int) -> int:
    """L(T) by simulating eviction step by step: the cache fills to C, then drops G = C - W + 1
    of its oldest rows at once (the schema's description, written out as a loop)."""
    held = 0
    for _ in range(total):
        if held == c:
            held -= c - w + 1
        held += 1
    return held


def test_resident_count_follows_the_schema():
    for c, w in ((8, 8), (24, 8), (9, 6), (160, 128)):
        for total in range(1, 3 * c):
            assert resident(total, WindowLayer(w, c)) == _reference_resident(total, c, w), (c, w, total)
            assert min(total, w) <= resident(total, WindowLayer(w, c)) <= min(total, c)


@pytest.mark.parametrize("name, windowed", [("mistral-tiny", {0: 8, 1: 8}), ("local-global-tiny", {1: 6, 3: 6})])
def test_the_attribute_is_on_exactly_the_windowed_layers(pair, name, windowed):
    full, window = pair[name]
    model = onnx.load(str(window.directory / "model.onnx"), load_external_data=False)
    gqa = [n for n in model.graph.node if n.op_type == "GroupQueryAttention"]
    attrs = [{a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} for n in gqa]
    assert [i for i, a in enumerate(attrs) if a.get("sliding_window_cache") == 1] == sorted(windowed)
    assert {i: a["local_window_size"] for i, a in enumerate(attrs) if "local_window_size" in a} == windowed
    plain = onnx.load(str(full.directory / "model.onnx"), load_external_data=False)
    assert not any(a.name == "sliding_window_cache" for n in plain.graph.node for a in n.attribute)
    dims = {v.name: v.type.tensor_type.shape.dim[2].dim_param for v in [*model.graph.input, *model.graph.output]
            if v.name.startswith(("past_key_values.", "present."))}
    assert {n for n, d in dims.items() if d == "window_cache"} == \
        {f"{io}.{i}.{p}" for i in windowed for io in ("past_key_values", "present") for p in ("key", "value")}
    layers = from_manifest(window.manifest)
    assert layers == {i: WindowLayer(w, default_capacity(w)) for i, w in windowed.items()}
    assert full.manifest["window_cache"] is None
    assert window.manifest["verification"] is not None  # the build ran the gate and passed


def _run(session, feeds):
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


@pytest.mark.parametrize("name", ["mistral-tiny", "local-global-tiny"])
def test_resident_rows_equal_the_full_caches_last_positions(pair, name):
    """Both builds driven with their own caches (separate past and present buffers) through a
    prefill longer than C, single tokens and chunks, far past C: logits and every cache agree."""
    from blueprint import runtime

    full, window = (runtime.load(b.directory) for b in pair[name])
    layers = window.bounded
    capacity = max(layer.capacity for layer in layers.values())
    rng = np.random.default_rng(0)
    b, prompt = 2, capacity + 5  # the prefill itself evicts
    ids = rng.integers(3, 250, (b, prompt))
    mask = np.ones((b, prompt), dtype=np.int64)
    mask[1, :7] = 0  # left padding, evicted later like any position
    full_past = window_past = None
    steps = [1] * 30 + [4, 1, 3] + [1] * 20  # single tokens and chunks after a past, at batch 2
    chunk, evictions, first = prompt, 0, layers[min(layers)]
    for k in range(len(steps) + 1):
        positions = position_ids_for(mask, ids.shape[1])
        a, full_past = full.forward(ids, mask, positions, full_past)
        c, window_past = window.forward(ids, mask, positions, window_past)
        assert np.abs(a - c).max() <= TOLERANCE, float(np.abs(a - c).max())
        total = mask.shape[1]
        for key, buffer in window_past.items():
            i = int(key.split(".")[1])
            if i not in layers:
                assert buffer.shape == full_past[key].shape  # a global layer keeps every position
                continue
            rows = resident(total, layers[i])
            assert buffer.shape[2] == layers[i].capacity < total  # smaller than the full cache
            diff = np.abs(buffer[:, :, :rows] - full_past[key][:, :, total - rows:]).max()
            assert diff <= TOLERANCE, (key, total, float(diff))
        evictions += resident(total, first) < resident(total - chunk, first) + chunk
        if k == len(steps):
            break
        chunk = steps[k]
        top = np.argmax(a[:, -1, :250], axis=-1)[:, None]  # [b, 1]
        ids = np.concatenate([top, rng.integers(3, 250, (b, chunk - 1))], axis=1)  # [b, chunk]
        mask = np.concatenate([mask, np.ones((b, chunk), dtype=np.int64)], axis=1)
    assert evictions >= 3


def test_the_gate_crosses_the_capacity_and_fails_on_the_wrong_rows(pair, monkeypatch, torch_model):
    spec_path = SPECS / "mistral-tiny.yaml"
    spec = blueprint.load_spec(spec_path)
    layers = plan(spec)
    cases = verify_mod.verification_cases(spec, True, layers)
    decode = next(c for c in cases if c.name == "decode")
    layer = layers[0]
    totals = decode.shape.seq + np.cumsum(decode.steps)
    assert decode.shape.seq < layer.capacity < totals[1]  # a single-token step evicts
    assert resident(totals[-1], layer) < resident(totals[-2], layer) + decode.steps[-1]  # the chunk too

    _, window = pair["mistral-tiny"]
    module = torch_model(window, True)
    report = verify_mod.verify(module, spec, window.directory / "model.onnx", kv_cache=True, bounded=layers)
    assert report.ok
    # comparing a full cache's min(T, C) last rows (no slack-aware eviction) must fail
    monkeypatch.setattr(verify_mod, "resident_rows", lambda a, total, layer: a[:, :, :min(total, layer.capacity)])
    monkeypatch.setattr(verify_mod, "last_rows",
                        lambda a, total, layer: a[:, :, total - min(total, layer.capacity):total])
    wrong = verify_mod.verify(module, spec, window.directory / "model.onnx", kv_cache=True, bounded=layers)
    assert not wrong.ok


@pytest.mark.parametrize("spec, extra, message", [
    ("mistral-tiny", {"portable": True}, "--window-cache needs the fused export"),
    ("mistral-tiny", {"staged": False}, "--export whole"),
    ("llama-tiny", {}, "no layer has attention.window"),
    ("bert-tiny", {}, "is an encoder"),
])
def test_the_flag_is_refused_where_it_cannot_apply(tmp_path, spec, extra, message):
    with pytest.raises(BlueprintError, match=message.replace("(", r"\(")):
        build(SPECS / f"{spec}.yaml", tmp_path / "out", window_cache=True, verify=False, **extra)
    assert not (tmp_path / "out").exists()


def test_a_window_not_below_max_seq_len_is_named(tmp_path):
    path = tmp_path / "wide.yaml"
    path.write_text((SPECS / "mistral-tiny.yaml").read_text().replace("window: 8", "window: 120"))
    with pytest.raises(BlueprintError, match=r"windows \[120\] need a capacity of at least \[136\] rows"):
        build(path, tmp_path / "out", window_cache=True, verify=False)


def test_cli_flag_and_error(tmp_path, capsys):
    rc = cli.main(["build", str(SPECS / "mistral-tiny.yaml"), "-o", str(tmp_path / "w"), "--window-cache", "-q",
                   "--no-verify"])
    assert rc == 0
    manifest = json.loads((tmp_path / "w" / "manifest.json").read_text())
    assert manifest["window_cache"]["layers"]["0"] == {"window": 8, "capacity": 24}
    assert manifest["dynamic_axes"]["past_key_values.0.key"] == {"0": "batch", "2": "window_cache"}
    rc = cli.main(["build", str(SPECS / "llama-tiny.yaml"), "-o", str(tmp_path / "l"), "--window-cache", "-q"])
    err = capsys.readouterr().err
    assert rc != 0 and "nothing to bound" in err and "Traceback" not in err
