"""Lossless 8-bit tables (``compiler.export.quant_gather``): a table that a GGUF import stored as
Q8_0 is read through GatherBlockQuantized at a quarter of the bytes, and the model's numbers do
not change at all (logits bit-equal); a table off the grid by one ulp keeps its float Gather.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx_ir as ir
import pytest
import torch
from buildfixtures import SPECS, decoder_feeds, load_tiny, saved_session

from compiler.export import build as build_mod
from compiler.export import quant_gather, quantize
from compiler.export.fuse import fold_packed_weights


def _q8_0(table: np.ndarray) -> np.ndarray:
    """``table`` [V, D] as llama.cpp stores Q8_0: per 32 values, an fp16 step d = max|x| / 127 and
    levels round(x / d); dequantized in float32 (written here, not with blueprint's packing)."""
    rows, width = table.shape
    blocks = table.reshape(rows, width // 32, 32).astype(np.float32)
    d = (np.abs(blocks).max(-1, keepdims=True) / 127).astype(np.float16).astype(np.float32)
    levels = np.clip(np.round(blocks / np.where(d == 0, 1, d)), -127, 127).astype(np.int8)  # integers: no -0.0
    return (levels.astype(np.float32) * d).reshape(rows, width)


def test_on_grid_accepts_q8_0_and_nothing_else():
    rng = np.random.default_rng(0)
    table = _q8_0(rng.standard_normal((50, 64)).astype(np.float32))
    table[3, :32] = 0.0  # an all-zero block
    levels, steps = quant_gather.on_grid(table, 32)
    assert levels.shape == (50, 64) and levels.dtype == np.uint8 and steps.shape == (50, 2)
    off = table.copy()
    off[7, 5] = np.nextafter(off[7, 5], np.float32(np.inf))  # one ulp off the grid
    assert quant_gather.on_grid(off, 32) is None
    signed = table.copy()
    signed[3, 0] = -0.0  # equal to 0.0, but not the same bits: the kernel would give +0.0
    assert quant_gather.on_grid(signed, 32) is None
    assert quant_gather.on_grid(rng.standard_normal((50, 64)).astype(np.float32), 32) is None  # a trained table
    assert quant_gather.on_grid(_q8_0(rng.standard_normal((50, 64)).astype(np.float32))[:, :48], 32) is None
    tall = _q8_0(rng.standard_normal((300, 64)).astype(np.float32))  # past the 256-row first look
    assert quant_gather.on_grid(tall, 32) is not None
    tall[280, 9] = np.nextafter(tall[280, 9], np.float32(-np.inf))  # off the grid after the first 256 rows
    assert quant_gather.on_grid(tall, 32) is None


@pytest.mark.parametrize("name, gathers", [("llama-tiny", 1), ("gpt2-tiny", 2)])  # gpt2: tied, the rescoring reads rows too
def test_q8_0_embedding_becomes_gather_block_quantized_with_the_same_logits(tmp_path, monkeypatch, name, gathers):
    out = tmp_path / "b"
    torch.manual_seed(0)
    build_mod.build(SPECS / f"{name}.yaml", out, verify=False)

    def fp32_model():
        model = ir.load(str(out / "model.onnx"))
        for value in model.graph.initializers.values():
            array = value.const_value.numpy()
            value.const_value = ir.Tensor(_q8_0(array) if value.name == "embed.tokens.weight" else array,
                                          name=value.name)
        assert fold_packed_weights(model) > 0
        return model

    options = quantize.QuantizeOptions("int4")
    compact = quantize.quantize_model(fp32_model(), options)
    ops = Counter(n.op_type for n in compact.graph)
    assert ops["GatherBlockQuantized"] == gathers
    assert "embed.tokens.weight" not in compact.graph.initializers
    levels = compact.graph.initializers["embed.tokens.weight_Q8"].const_value
    assert levels.dtype == ir.DataType.UINT8
    if name == "gpt2-tiny":  # its learned positions are a trained (random) table: off the grid, kept in float
        assert ops["Gather"] >= 1 and "embed.positions.weight" in compact.graph.initializers
    monkeypatch.setattr(quant_gather, "compact_tables", lambda model, block=32: [])
    plain = quantize.quantize_model(fp32_model(), options)
    assert Counter(n.op_type for n in plain.graph)["GatherBlockQuantized"] == 0
    a, b = saved_session(compact, tmp_path / "compact"), saved_session(plain, tmp_path / "plain")
    for feeds in decoder_feeds(load_tiny(name)):
        (la,), (lb,) = a.run(["logits"], feeds), b.run(["logits"], feeds)
        assert np.array_equal(la, lb)


def _table_graph(table: np.ndarray, consumers: list[tuple[str, dict]], output_table: bool = False):
    """A graph reading ``table`` through the given (op, attributes) nodes, each with its own input."""
    t = ir.val("T", const_value=ir.tensor(table, name="T"))
    inputs, nodes = [], []
    for i, (op, attrs) in enumerate(consumers):
        if op == "Gather":
            x = ir.val(f"ids{i}", ir.DataType.INT64, ir.Shape([3]))
        else:
            x = ir.val(f"x{i}", ir.DataType.FLOAT, ir.Shape([2, table.shape[0]]))
        inputs.append(x)
        nodes.append(ir.node(op, [t, x] if op == "Gather" else [x, t], attrs, name=f"n{i}"))
    outputs = [n.outputs[0] for n in nodes] + ([t] if output_table else [])
    graph = ir.Graph(inputs, outputs, nodes=nodes, initializers=[t], opset_imports={"": 21})
    return ir.Model(graph, ir_version=10)


@pytest.mark.parametrize("consumers, output_table, replaced", [
    ([("Gather", {})], False, True),  # axis absent: 0
    ([("Gather", {"axis": -2})], False, True),  # -2 of a 2-D table is axis 0
    ([("Gather", {"axis": 1})], False, False),  # columns: not the blocks' rows
    ([("Gather", {}), ("MatMul", {})], False, False),  # also read whole: the float table stays
    ([("Gather", {})], True, False),  # also a graph output
])
def test_only_tables_read_as_rows_alone_are_replaced(consumers, output_table, replaced):
    table = _q8_0(np.random.default_rng(1).standard_normal((40, 64)).astype(np.float32))
    model = _table_graph(table, consumers, output_table)
    assert quant_gather.compact_tables(model) == (["T"] if replaced else [])
    ops = Counter(n.op_type for n in model.graph)
    assert ops["GatherBlockQuantized"] == (1 if replaced else 0)
    assert ("T" in model.graph.initializers) is not replaced
