"""GGUF import on small files written the way llama.cpp writes them: the spec, the exact
weights (q/k permutation undone, names mapped), torch logits against transformers, the
dequantizers against independent references, and a clear error for every refusal."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from blueprint.errors import BlueprintError
from blueprint.gguf import import_gguf, read_model
from blueprint.hf import config_to_spec
from blueprint.spec.schema import ModelSpec
from compiler.weights import load_weights
from compiler.weights.gguf_tensors import unpermute

from hf.hf_models import make_reference, randomize
from .ggufwrite import permute, write_gguf

gguf = pytest.importorskip("gguf")
T = gguf.GGMLQuantizationType


@pytest.fixture(scope="module", params=["llama", "qwen2", "qwen3", "mistral"])
def reference(request, tmp_path_factory):
    """(family, transformers model, its HF folder, GGUF file with F32 tensors)."""
    family = request.param
    root = tmp_path_factory.mktemp(f"gguf-{family}")
    model = _qwen2_without_window(root / "hf") if family == "qwen2" else make_reference(family, root / "hf")
    state = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    arch = "llama" if family == "mistral" else family
    skip = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    path = write_gguf(root / "model.gguf", arch, model.config, state, skip=skip)
    return family, model, root / "hf", path


def _qwen2_without_window(folder):
    """Qwen2 with q/k/v biases; llama.cpp's qwen2 architecture has no sliding window, so the
    reference has none either (hf_models' qwen2 has one on layer 1)."""
    import transformers

    config = transformers.Qwen2Config(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                      rms_norm_eps=1e-5, tie_word_embeddings=False, vocab_size=96,
                                      bos_token_id=1, eos_token_id=2, pad_token_id=0)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(config)
    randomize(model, 0)
    model.eval().save_pretrained(folder)
    return model


def test_permutation_inverse_is_exact():
    rng = np.random.default_rng(0)
    for heads, hd, cols in ((4, 8, 16), (3, 64, 5), (1, 2, 1)):
        w = rng.standard_normal((heads * hd, cols)).astype(np.float32)
        assert np.array_equal(unpermute(permute(w, heads), heads), w)
        assert not np.array_equal(permute(w, heads), w) or hd == 2 and cols == 1


def test_spec_equals_the_hf_import(reference):
    family, model, folder, path = reference
    from blueprint.hf import import_folder

    spec, tokenizer = import_gguf(path)
    expected = import_folder(folder)
    ours = ModelSpec.model_validate(spec)
    theirs = ModelSpec.model_validate(expected)
    assert tokenizer is None  # no tokenizer keys in this file
    # the architecture is the same; only the names and the special ids (not in this GGUF) differ
    drop = {"name", "tokenizer", "init", "dropout"}
    assert ours.model_dump(exclude=drop) == theirs.model_dump(exclude=drop)


def test_weights_equal_the_checkpoint_exactly(reference):
    family, model, folder, path = reference
    spec = ModelSpec.model_validate(import_gguf(path)[0])
    ours = load_weights(path, spec)
    theirs = load_weights(folder, spec)
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name


def test_logits_equal_transformers(reference):
    family, model, folder, path = reference
    from compiler import compile_spec

    spec = ModelSpec.model_validate(import_gguf(path)[0])
    gm = compile_spec(spec)
    missing, unexpected = gm.load_state_dict(load_weights(path, spec), strict=False)
    assert not unexpected
    ids = torch.randint(3, spec.vocab_size, (2, 11), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        got = gm.eval()(ids, mask, (mask.cumsum(-1) - 1))["logits"]
        want = model(input_ids=ids, attention_mask=mask).logits
    assert (got - want).abs().max().item() < 1e-4


@pytest.mark.parametrize("qtype, bound", [(T.F16, 1e-3), (T.Q8_0, 2e-2), (T.Q4_0, 0.2), (T.Q4_1, 0.15),
                                          (T.Q5_0, 0.1)])
def test_quantized_storage_dequantizes_within_its_step(tmp_path, qtype, bound):
    """Each matrix comes back within the quantization step of its original (|w| ~ 0.15 * N(0, 1))."""
    model = make_reference("llama", tmp_path / "hf")
    state = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    path = write_gguf(tmp_path / "q.gguf", "llama", model.config, state, qtype=qtype)
    spec = ModelSpec.model_validate(import_gguf(path)[0])
    ours, theirs = load_weights(path, spec), load_weights(tmp_path / "hf", spec)
    errors = {n: (ours[n] - theirs[n]).abs().max().item() for n in ours}
    assert max(errors.values()) < bound
    assert max(errors.values()) > 0  # the storage really was quantized


def _f16(x: float) -> bytes:
    return struct.pack("<e", x)


def _scale_min_k4(j: int, q: bytes) -> tuple[int, int]:
    if j < 4:
        return q[j] & 63, q[j + 4] & 63
    return (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4)


def _q4_k_reference(block: bytes) -> list[float]:
    """ggml's dequantize_row_q4_K for one 144-byte block of 256 values, written from its C."""
    d, dmin = struct.unpack("<e", block[0:2])[0], struct.unpack("<e", block[2:4])[0]
    scales, qs = block[4:16], block[16:144]
    out, q, sub = [], 0, 0
    for _ in range(4):
        sc1, m1 = _scale_min_k4(sub, scales)
        sc2, m2 = _scale_min_k4(sub + 1, scales)
        out += [d * sc1 * (qs[q + l] & 0xF) - dmin * m1 for l in range(32)]
        out += [d * sc2 * (qs[q + l] >> 4) - dmin * m2 for l in range(32)]
        q, sub = q + 32, sub + 2
    return out


def _q6_k_reference(block: bytes) -> list[float]:
    """ggml's dequantize_row_q6_K for one 210-byte block of 256 values, written from its C."""
    ql, qh, sc = block[0:128], block[128:192], struct.unpack("<16b", block[192:208])
    d = struct.unpack("<e", block[208:210])[0]
    out = [0.0] * 256
    for half in range(2):
        y, l0, h0, s0 = 128 * half, 64 * half, 32 * half, 8 * half
        for l in range(32):
            i = l // 16
            q1 = ((ql[l0 + l] & 0xF) | (((qh[h0 + l] >> 0) & 3) << 4)) - 32
            q2 = ((ql[l0 + l + 32] & 0xF) | (((qh[h0 + l] >> 2) & 3) << 4)) - 32
            q3 = ((ql[l0 + l] >> 4) | (((qh[h0 + l] >> 4) & 3) << 4)) - 32
            q4 = ((ql[l0 + l + 32] >> 4) | (((qh[h0 + l] >> 6) & 3) << 4)) - 32
            out[y + l] = d * sc[s0 + i] * q1
            out[y + l + 32] = d * sc[s0 + i + 2] * q2
            out[y + l + 64] = d * sc[s0 + i + 4] * q3
            out[y + l + 96] = d * sc[s0 + i + 6] * q4
    return out


@pytest.mark.parametrize("qtype, size, reference", [(T.Q4_K, 144, _q4_k_reference), (T.Q6_K, 210, _q6_k_reference)])
def test_k_quants_match_ggml_reference(qtype, size, reference):
    """K-quant blocks of random bytes (finite scales) dequantize as ggml's C code does."""
    from compiler.weights.gguf_tensors import dequantized

    rng = np.random.default_rng(0)
    blocks = []
    for _ in range(6):
        raw = bytearray(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        if qtype == T.Q4_K:
            raw[0:2], raw[2:4] = _f16(float(rng.uniform(0.001, 0.05))), _f16(float(rng.uniform(0.001, 0.05)))
        else:
            raw[208:210] = _f16(float(rng.uniform(0.001, 0.05)))
        blocks.append(bytes(raw))

    class Tensor:  # the parts of a GGUF reader tensor that dequantized() reads
        name, tensor_type, shape = "blk.0.attn_q.weight", qtype, [512, 3]
        data = np.frombuffer(b"".join(blocks), dtype=np.uint8).reshape(3, 2 * size)

    got = dequantized(Tensor())
    want = np.array([v for b in blocks for v in reference(b)], dtype=np.float64).reshape(3, 512)
    assert got.shape == (3, 512)
    assert np.abs(got - want).max() < 1e-6


def test_unreadable_quantization_type_names_tensor_and_type(tmp_path):
    from compiler.weights.gguf_tensors import dequantized

    class Tensor:
        name, tensor_type, shape = "blk.3.ffn_up.weight", T.Q8_1, [32, 2]
        data = np.zeros((2, 36), dtype=np.uint8)

    with pytest.raises(BlueprintError, match=r"'blk\.3\.ffn_up\.weight' is stored as Q8_1"):
        dequantized(Tensor())


def _tiny_config():
    import transformers

    return transformers.LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                                    num_attention_heads=4, num_key_value_heads=2, vocab_size=64,
                                    max_position_embeddings=64)


def _state(config) -> dict:
    rng = np.random.default_rng(0)
    shapes = {"model.embed_tokens.weight": (64, 32), "model.norm.weight": (32,)}
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


def test_unknown_architecture_key_is_named(tmp_path):
    path = write_gguf(tmp_path / "x.gguf", "llama", _tiny_config(), _state(None), extra_keys={"llama.expert_count": 8})
    with pytest.raises(BlueprintError, match=r"llama\.expert_count.*not understood"):
        read_model(path)


def test_architecture_the_spec_cannot_express_is_refused_with_the_reason(tmp_path):
    path = write_gguf(tmp_path / "g.gguf", "gemma", _tiny_config(), _state(None))
    with pytest.raises(BlueprintError, match=r"'gemma' needs a GGUF layout in the gemma family module"):
        read_model(path)


def test_a_file_that_is_not_gguf(tmp_path):
    from blueprint.cli import main

    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00garbage")
    with pytest.raises(BlueprintError, match="not a readable GGUF file"):
        read_model(bad)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert main(["import-hf", str(text)]) != 0
    assert main(["import-hf", str(tmp_path / "absent.gguf")]) != 0


def test_tensor_without_a_place_is_refused(tmp_path):
    config = _tiny_config()
    state = {**_state(config), "model.layers.0.self_attn.q_proj.weight": np.zeros((32, 32), np.float32)}
    path = write_gguf(tmp_path / "x.gguf", "llama", config, state)
    import gguf as g

    w = g.GGUFWriter(str(tmp_path / "y.gguf"), "llama")  # the same file plus a stray tensor
    r = g.GGUFReader(str(path))
    for f in r.fields.values():
        if f.name.startswith("llama."):
            w.add_uint32(f.name, int(f.contents())) if isinstance(f.contents(), int) else w.add_float32(f.name, f.contents())
    w.add_tensor("token_embd.weight", np.zeros((64, 32), np.float32))
    w.add_tensor("rope_freqs_extra.weight", np.zeros((4,), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    spec = ModelSpec.model_validate(config_to_spec({**config.to_dict(), "model_type": "llama"}))
    with pytest.raises(BlueprintError, match="rope_freqs_extra.weight"):
        load_weights(tmp_path / "y.gguf", spec)
