"""The cost model (contract 6): exact parameter counts, FLOPs and KV-cache bytes against hand
computations, and the report's shape. Activation bytes are checked against measurement in
test_checkpointing.py."""

from __future__ import annotations

import pytest

from compiler import compile_spec
from compiler.cost import cost_report
from helpers import ALL, load, variant


@pytest.mark.parametrize("name", ALL)
def test_parameter_counts_are_exact(name):
    spec = load(name)
    report = cost_report(spec, seq_len=16)
    gm = compile_spec(spec, device="meta")
    assert report.params_total == sum(p.numel() for p in gm.parameters())
    assert report.params_by_component["embed"] == sum(p.numel() for p in gm.embed.parameters())
    for i in range(spec.num_layers):
        layer = gm.layers.get_submodule(str(i))
        assert report.params_by_component[f"layers.{i}"] == sum(p.numel() for p in layer.parameters())
    own_head = {id(p) for p in gm.head.parameters()} - {id(p) for p in gm.embed.parameters()}
    assert report.params_by_component["head"] == sum(p.numel() for p in gm.head.parameters() if id(p) in own_head)


def test_flops_by_hand_for_a_small_decoder():
    spec = variant(block={"attention": {"num_kv_heads": 2}}, tie_embeddings=True)  # D 32, H 4, KV 2, hd 8
    s = 8
    r = cost_report(spec, seq_len=s)
    d, f, v, L = 32, 48, 64, 2
    matmul = L * (d * 32 + 2 * d * 16 + 32 * d + 2 * d * f) + d * v
    causal_keys = sum(p + 1 for p in range(s)) / s
    assert r.flops_per_token_prefill == pytest.approx(2 * matmul + L * 4 * 4 * 8 * causal_keys)
    assert r.flops_per_token_decode == pytest.approx(2 * matmul + L * 4 * 4 * 8 * s)


def test_windows_cut_attention_flops_and_kv_cache():
    spec = load("mistral")  # window 4096 on every layer, 32 layers, 8 KV heads x 128
    r = cost_report(spec, seq_len=32768)
    per_layer_full = 2 * 8 * 128 * 4
    assert r.kv_cache_bytes_per_token_full == 32 * per_layer_full
    assert r.kv_cache_bytes_per_token == 32 * per_layer_full * 4096 // 32768
    dense = cost_report(spec.model_copy(update={"block": spec.block.model_copy(
        update={"attention": spec.block.attention.model_copy(update={"window": None})})}), seq_len=32768)
    assert r.flops_per_token_prefill < dense.flops_per_token_prefill
    assert r.flops_per_token_decode < dense.flops_per_token_decode


def test_bidirectional_window_counts_both_sides():
    spec = load("modernbert-tiny")  # window 8 (4 each side) on layers 1, 2; global on 0, 3
    s = 32
    r = cost_report(spec, batch=1, seq_len=s)
    local = sum(min(p + 4, s - 1) - max(p - 4, 0) + 1 for p in range(s)) / s
    attn = 4 * 4 * 16 * (2 * s + 2 * local)
    d, f = 64, 96
    matmul = 4 * (4 * d * d + 3 * d * f)
    assert r.flops_per_token_prefill == pytest.approx(2 * matmul + attn)
    assert r.kv_cache_bytes_per_token == 0  # encoders have no cache


def test_activation_labels_include_the_spec_policy():
    r = cost_report(load("mistral-tiny"), seq_len=16)
    assert list(r.activation_bytes)[:2] == ["none", "every_layer"] and "every:2" not in list(r.activation_bytes)[:2]
    assert "every:2" in r.activation_bytes
    assert r.activation_bytes["every_layer"] < r.activation_bytes["every:2"] < r.activation_bytes["none"]
    bert = cost_report(load("bert"), batch=8, seq_len=128)
    assert bert.activation_bytes["none"] > 8 * bert.activation_bytes["every_layer"]
