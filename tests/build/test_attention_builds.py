"""The attention and position mechanisms of issue 13 through a real build: the staged export
(one piece per distinct layer structure, stamped per layer) and the float64 verification gate.

A decoder mixes every per-layer attention field: soft-capped and plain layers (the explicit
softmax beside the fused kernel), windows, QK-norm over the whole projection, a layer without
RoPE and a layer with its own base and scaling, on an interleaved LongRoPE model whose original
length (8) lies inside the gate's sequences, so both frequency sets are checked: the single-row
case (4 tokens + 2 decode steps) stays within it (short factors), the others go beyond (long). An encoder covers learned positions with an offset.
Each build is the gate's own test: onnxruntime within 4x torch fp32's error from float64 + 1e-5.
"""

from __future__ import annotations

import pytest

import blueprint
from compiler.export import stamp
from compiler.export.build import build

DECODER = """
name: attn-mix
vocab_size: 64
max_seq_len: 64
embed_dim: 32
num_layers: 5
norm: {kind: rmsnorm}
positional:
  kind: rope
  layout: interleaved
  scaling: {kind: longrope, original_max_seq_len: 8, factor: 8.0,
            short_factor: [1.0, 1.2, 1.5, 2.0], long_factor: [1.5, 2.5, 4.0, 7.0]}
block:
  attention: {num_heads: 4, num_kv_heads: 2, qk_norm: true, qk_norm_scope: projection, softcap: 2.0, window: 6}
  ffn: {kind: swiglu, hidden_dim: 64}
layers:
  - {every: 2, set: {attention: {softcap: null, window: null}}}
  - {index: 3, set: {attention: {rope: false}}}
  - {index: 4, set: {attention: {rope_base: 500.0, rope_scaling: {kind: linear, factor: 2.0}}}}
"""

ENCODER = """
name: learned-offset
vocab_size: 64
max_seq_len: 24
embed_dim: 32
num_layers: 2
positional: {kind: learned, offset: 2}
embed_norm: true
norm: {kind: layernorm}
block:
  attention: {num_heads: 4, causal: false, qkv_bias: true, out_bias: true, softcap: 3.0}
  ffn: {kind: mlp, hidden_dim: 64}
head: {kind: masked_lm}
"""


@pytest.mark.parametrize("text, groups", [(DECODER, 4), (ENCODER, 1)], ids=["decoder", "encoder"])
def test_attention_mechanisms_build_and_pass_the_gate(tmp_path, text, groups):
    (tmp_path / "spec.yaml").write_text(text)
    result = build(tmp_path / "spec.yaml", tmp_path / "out")
    assert result.report is not None and result.report.ok, result.report.format()
    spec = blueprint.load_spec(tmp_path / "spec.yaml")
    # layers 0, 2 (plain, global) share one piece; 1 (capped, windowed), 3 (no RoPE), 4 (own base)
    assert len(stamp.layer_groups(spec)) == groups
    for case in result.report.cases:
        for out, err in case.errors.items():
            assert err.nonfinite is None and 0 <= err.ort < 1e-5, (case.case, out, err)
