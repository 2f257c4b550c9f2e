"""The int4 default: minmax with its float offsets folded into the MatMulNBits, and the LM head's
best candidates rescored in full precision (``--head-rescore``).

Structure (which nodes appear) and numbers: the folded weights are unpacked here independently of
the packing code and run as a plain fp32 MatMul against onnxruntime's kernel (accuracy level 0
computes in fp32: 1e-4, observed ~1e-6); rescored logits are checked against the same quantized
body with an fp32 head (1e-5 at the candidates, bit-equal elsewhere).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx_ir as ir
import pytest
import torch
from buildfixtures import (
    SPECS,
    assert_same_logits,
    decoder_feeds,
    load_tiny,
    quantizer_input,
    saved_session,
    unpack4,
)

import blueprint
from compiler.export import onnx_export, quant_minmax, quantize
from compiler.export.build import default_compile


def _export(name: str):
    spec = load_tiny(name)
    torch.manual_seed(0)
    module = default_compile(spec, kv_cache=True).eval()
    return spec, ir.serde.serialize_model(onnx_export.export_model(module, spec, kv_cache=True))


@pytest.fixture(scope="module")
def llama():
    return _export("llama-tiny")  # untied head; down_proj K = 176 is not a multiple of 32


@pytest.fixture(scope="module")
def llama_fused(tmp_path_factory):
    """llama-tiny's fused export (GroupQueryAttention, packed q/k/v and gate/up) as a build
    quantizes it: packed weights materialised."""
    from compiler.export import build as build_mod
    from compiler.export.fuse import fold_packed_weights

    out = tmp_path_factory.mktemp("fused") / "b"
    torch.manual_seed(0)
    build_mod.build(SPECS / "llama-tiny.yaml", out, verify=False)
    model = ir.load(str(out / "model.onnx"))
    for value in model.graph.initializers.values():
        value.const_value = ir.Tensor(value.const_value.numpy(), name=value.name)
    assert fold_packed_weights(model) > 0
    return load_tiny("llama-tiny"), ir.serde.serialize_model(model)


@pytest.fixture(scope="module")
def gpt2():
    return _export("gpt2-tiny")  # tied head: the token embedding is the rows rescoring reads


def _arrays(node):
    """(packed levels, scales, zero points, K) that a MatMulNBits node stores."""
    return (*(node.inputs[i].const_value.numpy() for i in (1, 2, 3)), node.attributes["K"].value)


def _levels(packed, scales, zp, n: int, blocks: int, block: int):
    """4-bit levels [N, blocks, block], zero points [N, blocks] and scales [N, blocks]."""
    levels = unpack4(packed, n, blocks, block)
    zp = zp.reshape(n, -1)
    zero = np.stack([zp & 0x0F, zp >> 4], -1).reshape(n, -1)[:, :blocks].astype(np.int64)
    return levels, zero, scales.reshape(n, blocks)


def _folded_weight(packed, scales, zp, k_wide: int, k: int, n: int, block: int):
    """The [K, N] weight a folded MatMulNBits over [x, x @ E] computes with, and its steps [K, N]."""
    blocks, wide = k // block, -(-k_wide // block)
    levels, zero, scale = _levels(packed, scales, zp, n, wide, block)
    deq = ((levels - zero[..., None]) * scale[..., None]).reshape(n, -1)  # [N, wide * block]
    main, remainders = deq[:, :k], deq[:, k:k + blocks]  # one remainder per block of x
    weight = main + np.repeat(remainders, block, axis=1)  # x @ E broadcasts each block's remainder
    return weight.T.astype(np.float32), np.repeat(scale[:, :blocks], block, axis=1).T


@pytest.mark.parametrize("export", ["llama", "llama_fused"])
def test_folded_minmax_structure_and_kernel_against_unpacked_weights(export, request, tmp_path):
    spec, proto = request.getfixturevalue(export)
    fused = export == "llama_fused"
    weights = quantize.weight_matmuls(quantizer_input(proto))
    q = quantize.quantize_model(ir.serde.deserialize_model(proto),
                                quantize.QuantizeOptions("int4", accuracy_level=0, head_rescore=0))
    nbits = {n.name.removesuffix("_Q4"): n for n in q.graph if n.op_type == "MatMulNBits"}
    assert set(nbits) == set(weights)
    folded = {name for name, (_, w) in weights.items() if w.shape[0] % 32 == 0}
    # per layer q, k, v (packed when fused), o, gate, up (packed) read 64 inputs; down_proj (K = 176)
    # keeps the exact correction; and the head
    assert len(folded) == (3 if fused else 6) * spec.num_layers + 1
    widened = [n for n in q.graph if n.name.endswith("_widened")]
    assert len(widened) == 3 * spec.num_layers + 1 and all(n.op_type == "Concat" for n in widened)
    assert sum(n.name.endswith("_remainder") for n in q.graph) == spec.num_layers  # the down_projs
    sums = Counter(n.op_type for n in q.graph if n.name.endswith("_block_sums"))
    assert sum(sums.values()) == len(widened) + spec.num_layers
    if fused:  # every rank follows from the fused graph (quant_minmax.value_ranks): Reshape + ReduceSum;
        # the down_projs' partial last block keeps the 0/1 MatMul
        assert sums == {"ReduceSum": len(widened), "MatMul": spec.num_layers}
    reference = quantizer_input(proto)
    by_name = {n.name: n for n in reference.graph}
    for name in folded:
        node, (_, w) = nbits[name], weights[name]
        k, n = w.shape
        assert node.attributes["K"].value == k + k // 32 and node.inputs[0].producer().op_type == "Concat"
        weight, step = _folded_weight(*_arrays(node), k, n, 32)
        # half a level of the block's own step, plus the remainder's rounding on its 16-level grid
        bound = 0.5 * step + step.max(axis=0, keepdims=True) / 30 + 1e-6
        assert (np.abs(weight - w) <= bound).all()
        target = by_name[name]
        target.inputs[1].const_value = ir.Tensor(weight, name=target.inputs[1].name)
    for name in set(weights) - folded:  # the exact path, as test_quantize_mixed unpacks it
        node, (wname, w) = nbits[name], weights[name]
        k, n = w.shape
        blocks = -(-k // 32)
        levels, zero, scale = _levels(*_arrays(node)[:3], n, blocks, 32)
        remainder = q.graph.initializers[f"{wname}_remainders"].const_value.numpy()  # [blocks, N]
        deq = ((levels - zero[..., None]) * scale[..., None] + remainder.T[..., None]).reshape(n, -1)[:, :k]
        target = by_name[name]
        target.inputs[1].const_value = ir.Tensor(deq.T.astype(np.float32), name=target.inputs[1].name)
    assert_same_logits(spec, q, reference, tmp_path)


@pytest.mark.parametrize("straddle", [True, False])
def test_folding_loses_only_the_remainders_rounding_on_a_q4_1_grid(straddle):
    """Weights on a Q4_1 grid (a GGUF import): the levels come back exactly; what moves is each
    block's offset remainder c, rounded on a 16-level grid per column and group of 32 blocks: at
    most (max c - min c) / 30, 0 included. Blocks that straddle 0 (trained weights' usual case)
    have |c| <= d / 2, so that is at most max(d) / 30; one-signed blocks can have larger c."""
    rng = np.random.default_rng(1)
    k, n = 128, 24
    d = rng.uniform(1e-3, 1e-1, (k // 32, n))
    m = -d * rng.uniform(0, 15, d.shape) if straddle else -rng.uniform(0, 1, d.shape)
    q = rng.integers(0, 16, (k // 32, 32, n))
    q[:, 0], q[:, 1] = 0, 15
    w = (q * d[:, None] + m[:, None]).reshape(k, n).astype(np.float32)
    packed, scales, zp, k_wide = quant_minmax.quantize_folded(w, 4, 32)
    assert k_wide == k + k // 32 and packed.shape == (n, k // 32 + 1, 16)
    weight, _ = _folded_weight(packed, scales, zp, k_wide, k, n, 32)
    error = np.abs(weight - w).max(axis=0)  # [N]
    c = quant_minmax.quantize_weight(w, 4, 32)[3]  # the exact remainders [blocks, N]
    spread = np.maximum(c.max(axis=0), 0) - np.minimum(c.min(axis=0), 0)
    assert (error <= spread / 30 + 1e-6).all()
    if straddle:
        assert (np.abs(c) <= d / 2 + 1e-6).all() and error.max() <= d.max() / 30 + 1e-6
    exact = quant_minmax.dequantize(*quant_minmax.quantize_weight(w, 4, 32), k, 4, 32)
    assert np.abs(exact - w).max() < 1e-6  # minmax-exact has no such error


@pytest.fixture(scope="module")
def llama_biased(tmp_path_factory):
    """llama-tiny with a head bias (as Phi's), set to random values: rescoring must score it too."""
    spec_file = tmp_path_factory.mktemp("biased") / "llama-biased.yaml"
    text = (SPECS / "llama-tiny.yaml").read_text()
    spec_file.write_text(text.replace("head: {kind: causal_lm}", "head: {kind: causal_lm, bias: true}"))
    spec = blueprint.load_spec(spec_file)
    assert spec.head.bias
    torch.manual_seed(0)
    module = default_compile(spec, kv_cache=True).eval()
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith("head.proj.bias"):
                param.normal_(0.0, 0.3)
    return spec, ir.serde.serialize_model(onnx_export.export_model(module, spec, kv_cache=True))


@pytest.mark.parametrize("model, k, kind", [("llama", 5, "int4"), ("gpt2", 5, "int4"), ("llama", 1, "int4"),
                                           ("gpt2", 2, "int4"), ("llama_biased", 5, "int4"),
                                           ("gpt2", 5, "int8"), ("llama_biased", 3, "int8")])
def test_rescored_head_is_the_fp32_head_on_its_candidates(model, k, kind, request, tmp_path):
    """int4: blueprint's minmax; int8: onnxruntime's RTN quantizer (names must survive it)."""
    spec, proto = request.getfixturevalue(model)

    def quantized(**options):
        return quantize.quantize_model(ir.serde.deserialize_model(proto),
                                       quantize.QuantizeOptions(kind, accuracy_level=0, **options))

    rescored = quantized(head_rescore=k)
    ops = Counter(n.op_type for n in rescored.graph)
    assert ops["TopK"] == 1 and ops["ScatterElements"] == 1
    topk = next(n for n in rescored.graph if n.op_type == "TopK")
    rows = next(n for n in rescored.graph if n.name.endswith("_rescore_rows")).inputs[0]
    # tied: the rows are the embedding the input Gather reads (no second copy); untied: the head's own
    gathers = [n for n in rescored.graph if n.op_type == "Gather" and n.inputs[0] is rows]
    assert len(gathers) == (2 if model == "gpt2" else 1)
    assert rows.const_value.shape == (spec.vocab_size, spec.embed_dim)
    assert topk.inputs[1].const_value.numpy().tolist() == [k]
    if model == "llama_biased":  # the candidates are chosen and rescored after the bias
        assert topk.inputs[0].producer().op_type == "Add"
        assert any(n.name.endswith("_rescore_bias") for n in rescored.graph)

    sessions = {name: saved_session(m, tmp_path / name) for name, m in [
        ("rescored", rescored), ("approx", quantized(head_rescore=0)),
        ("exact", quantized(head_rescore=0, keep_fp32=("head",)))]}
    for feeds in decoder_feeds(spec):
        got = {name: s.run(["logits"], feeds)[0] for name, s in sessions.items()}
        top = np.argpartition(-got["approx"], k - 1, axis=-1)[..., :k]  # the 4-bit head's k best
        chosen = np.zeros(got["approx"].shape, dtype=bool)
        np.put_along_axis(chosen, top, True, axis=-1)
        assert np.abs(got["rescored"] - got["exact"])[chosen].max() <= 1e-5
        # outside the k: the 4-bit logits, capped at the lowest rescored candidate
        floor = np.where(chosen, got["rescored"], np.inf).min(-1, keepdims=True)
        capped = np.minimum(got["approx"], floor)
        assert np.array_equal(got["rescored"][~chosen], capped[~chosen])
        # so the argmax is a candidate, and the fp32 head's argmax wherever that is a candidate
        best = got["rescored"].argmax(-1)
        assert np.take_along_axis(chosen, best[..., None], -1).all()
        fp32_best = got["exact"].argmax(-1)
        inside = np.take_along_axis(chosen, fp32_best[..., None], -1)[..., 0]
        assert inside.any() and (best[inside] == fp32_best[inside]).all()
        assert not np.allclose(got["approx"], got["exact"], atol=1e-3)  # the 4-bit head does differ


def test_rescoring_is_off_for_a_head_left_in_fp32(llama):
    spec, proto = llama
    q = quantize.quantize_model(ir.serde.deserialize_model(proto),
                                quantize.QuantizeOptions("int4", keep_fp32=("head",)))
    assert not any(n.op_type == "TopK" for n in q.graph)


def test_manifest_records_the_k_the_graph_uses(tmp_path):
    """K above the vocabulary rescores every id: the manifest says how many, not what was asked."""
    import json

    from compiler.export import build as build_mod

    spec = load_tiny("llama-tiny")
    result = build_mod.build(SPECS / "llama-tiny.yaml", tmp_path / "b", verify=False,
                             quantize=quantize.QuantizeOptions("int4", head_rescore=1000, min_agreement=0.0))
    entry = json.loads((result.directory / "manifest.json").read_text())["quantization"]
    assert entry["head_rescore"] == spec.vocab_size == 256
