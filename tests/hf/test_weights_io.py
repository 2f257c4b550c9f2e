"""save_weights / load_weights on blueprint safetensors files: round trips and every refusal."""

from __future__ import annotations

import json
import pickle
import struct

import pytest
import torch
from safetensors.torch import save_file

from blueprint.errors import BlueprintError
from compiler.naming import parameter_shapes
from compiler.weights import load_weights, save_weights

from .conftest import random_state, tiny_spec


def test_round_trip_exact(tmp_path, llama_spec):
    state = random_state(llama_spec)
    path = save_weights(state, tmp_path / "w.safetensors")
    loaded = load_weights(path, llama_spec)
    assert list(loaded) == list(parameter_shapes(llama_spec))
    for name, t in state.items():
        assert torch.equal(loaded[name], t), name


def test_save_is_deterministic(tmp_path, llama_spec):
    state = random_state(llama_spec)
    a = save_weights(state, tmp_path / "a.safetensors").read_bytes()
    shuffled = dict(reversed(list(state.items())))
    b = save_weights(shuffled, tmp_path / "b.safetensors").read_bytes()
    assert a == b


def test_tied_weight_written_once(tmp_path):
    spec = tiny_spec("gpt2-tiny")  # tie_embeddings: true
    module = torch.nn.Module()
    module.embed = torch.nn.Module()
    module.embed.tokens = torch.nn.Embedding(spec.vocab_size, spec.embed_dim)
    module.head = torch.nn.Module()
    module.head.proj = torch.nn.Linear(spec.embed_dim, spec.vocab_size, bias=False)
    module.head.proj.weight = module.embed.tokens.weight
    path = save_weights(module, tmp_path / "w.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        assert sorted(fh.keys()) == ["embed.tokens.weight"]


def _bad(tmp_path, llama_spec, mutate):
    state = random_state(llama_spec)
    mutate(state)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    with pytest.raises(BlueprintError) as info:
        load_weights(path, llama_spec)
    return info.value.message


def test_missing_tensor_named(tmp_path, llama_spec):
    msg = _bad(tmp_path, llama_spec, lambda s: s.pop("layers.1.attn.k_proj.weight"))
    assert "missing" in msg and "layers.1.attn.k_proj.weight" in msg


def test_unexpected_tensor_named(tmp_path, llama_spec):
    msg = _bad(tmp_path, llama_spec, lambda s: s.__setitem__("layers.9.extra", torch.zeros(3)))
    assert "no place in the spec" in msg and "layers.9.extra" in msg


def test_wrong_shape_named(tmp_path, llama_spec):
    msg = _bad(tmp_path, llama_spec, lambda s: s.__setitem__("final_norm.weight", torch.ones(65)))
    assert "'final_norm.weight' has shape [65]" in msg and "[64]" in msg


def test_non_finite_named(tmp_path, llama_spec):
    def poison(s):
        s["layers.0.ffn.up_proj.weight"][3, 4] = float("nan")

    msg = _bad(tmp_path, llama_spec, poison)
    assert "layers.0.ffn.up_proj.weight" in msg and "non-finite" in msg


def test_integer_dtype_refused(tmp_path, llama_spec):
    msg = _bad(
        tmp_path, llama_spec,
        lambda s: s.__setitem__("final_norm.weight", torch.ones(64, dtype=torch.int32)),
    )
    assert "'final_norm.weight' has dtype torch.int32" in msg


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2, torch.bfloat16, torch.float64])
def test_other_float_dtypes_load_exactly(tmp_path, llama_spec, dtype):
    """Narrow floats widen exactly (float8 has no isfinite kernel: checked after widening)."""
    state = random_state(llama_spec)
    state["final_norm.weight"] = state["final_norm.weight"].to(dtype)
    path = tmp_path / "w.safetensors"
    save_file(state, str(path))
    loaded = load_weights(path, llama_spec)["final_norm.weight"]
    assert loaded.dtype == torch.float32 and torch.equal(loaded, state["final_norm.weight"].float())


def test_non_finite_float8_named(tmp_path, llama_spec):
    state = random_state(llama_spec)
    state["final_norm.weight"] = state["final_norm.weight"].to(torch.float8_e4m3fn)
    state["final_norm.weight"][5] = float("nan")
    path = tmp_path / "w.safetensors"
    save_file(state, str(path))
    with pytest.raises(BlueprintError, match="'final_norm.weight' contains 1 non-finite"):
        load_weights(path, llama_spec)


def test_overflow_into_half_refused(tmp_path):
    spec = tiny_spec("llama-tiny").model_copy(update={"dtype": "float16"})
    state = random_state(spec)
    state["final_norm.weight"][0] = 1.0e6  # > float16 max (65504)
    path = tmp_path / "w.safetensors"
    save_file(state, str(path))
    with pytest.raises(BlueprintError, match="final_norm.weight.*overflow the spec's dtype float16"):
        load_weights(path, spec)


def test_duplicate_name_in_header_refused(tmp_path, llama_spec):
    # safetensors itself accepts this (last entry wins); blueprint must not.
    state = {"final_norm.weight": torch.ones(64)}
    path = tmp_path / "dup.safetensors"
    save_file(state, str(path))
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    entry = header["final_norm.weight"]
    text = '{"final_norm.weight": %s, "final_norm.weight": %s}' % (
        json.dumps({**entry, "shape": [1], "data_offsets": [0, 4]}), json.dumps(entry)
    )
    body = text.encode().ljust(len(text) + (-len(text)) % 8)
    path.write_bytes(struct.pack("<Q", len(body)) + body + raw[8 + n :])
    with pytest.raises(BlueprintError, match="'final_norm.weight' appears twice"):
        load_weights(path, llama_spec)


@pytest.mark.parametrize("suffix", [".bin", ".pt", ".pth", ".ckpt"])
def test_pickle_suffix_refused_without_unpickling(tmp_path, llama_spec, suffix, monkeypatch):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(pickle.dumps({"x": 1}))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    with pytest.raises(BlueprintError, match="refusing"):
        load_weights(path, llama_spec)


@pytest.mark.parametrize("magic", [pickle.dumps({"a": 1}), b"PK\x03\x04rest-of-a-zip"])
def test_pickle_magic_refused(tmp_path, llama_spec, magic):
    path = tmp_path / "innocent.safetensors"
    path.write_bytes(magic)
    with pytest.raises(BlueprintError, match="pickle"):
        load_weights(path, llama_spec)


def test_torch_save_file_refused(tmp_path, llama_spec):
    path = tmp_path / "weights.data"
    torch.save(random_state(llama_spec), path)
    with pytest.raises(BlueprintError, match="pickle/zip"):
        load_weights(path, llama_spec)


def test_folder_with_only_bin_refused(tmp_path, llama_spec):
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x02}q\x00.")
    with pytest.raises(BlueprintError, match="only pickle checkpoints"):
        load_weights(tmp_path, llama_spec)


def test_truncated_file(tmp_path, llama_spec):
    path = save_weights(random_state(llama_spec), tmp_path / "w.safetensors")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(BlueprintError):
        load_weights(path, llama_spec)


def test_sharded_folder(tmp_path, llama_spec):
    state = random_state(llama_spec)
    names = list(state)
    half = len(names) // 2
    shards = {"a.safetensors": names[:half], "b.safetensors": names[half:]}
    for file, ns in shards.items():
        save_file({n: state[n] for n in ns}, str(tmp_path / file))
    index = {"metadata": {}, "weight_map": {n: f for f, ns in shards.items() for n in ns}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    loaded = load_weights(tmp_path, llama_spec)
    assert all(torch.equal(loaded[n], state[n]) for n in names)


def test_sharded_duplicate_across_shards(tmp_path, llama_spec):
    state = random_state(llama_spec)
    save_file(state, str(tmp_path / "a.safetensors"))
    save_file({"final_norm.weight": state["final_norm.weight"]}, str(tmp_path / "b.safetensors"))
    index = {"weight_map": {n: "a.safetensors" for n in state}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    # b.safetensors is not referenced by the index, so first corrupt the index to reference both
    index["weight_map"]["final_norm.weight"] = "b.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(BlueprintError, match="'final_norm.weight' is stored twice, in 'a.safetensors' and 'b.safetensors'"):
        load_weights(tmp_path, llama_spec)
    index["weight_map"]["final_norm.weight"] = "a.safetensors"  # the index names one, both hold it
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({**index, "weight_map": {
        **index["weight_map"], "layers.0.attn_norm.weight": "b.safetensors"}}))
    save_file({n: state[n] for n in ("final_norm.weight", "layers.0.attn_norm.weight")}, str(tmp_path / "b.safetensors"))
    with pytest.raises(BlueprintError, match="'final_norm.weight' is stored twice"):
        load_weights(tmp_path, llama_spec)


def test_shard_outside_folder_refused(tmp_path, llama_spec):
    inner = tmp_path / "ckpt"
    inner.mkdir()
    save_file(random_state(llama_spec), str(tmp_path / "evil.safetensors"))
    index = {"weight_map": {"final_norm.weight": "../evil.safetensors"}}
    (inner / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(BlueprintError, match="outside the checkpoint folder"):
        load_weights(inner, llama_spec)


def test_missing_path(tmp_path, llama_spec):
    with pytest.raises(BlueprintError, match="does not exist"):
        load_weights(tmp_path / "nope.safetensors", llama_spec)


def test_aliased_tensors_other_than_tied_embeddings_all_saved(tmp_path, llama_spec):
    """Only the tied embedding is stored once; two spec parameters that happen to share storage
    (e.g. Phi's one input norm loaded into both norms of a parallel block) are both written."""
    state = random_state(llama_spec)
    state["layers.0.ffn_norm.weight"] = state["layers.0.attn_norm.weight"]
    loaded = load_weights(save_weights(state, tmp_path / "w.safetensors"), llama_spec)
    assert torch.equal(loaded["layers.0.ffn_norm.weight"], state["layers.0.attn_norm.weight"])
