"""The attention and position fields of issue 13: what validates, what each rule reports and
where, and the defaults the lock file states (YaRN's and LongRoPE's attention factors)."""

from __future__ import annotations

import math

import pytest

from blueprint.errors import SpecError
from blueprint.spec.load import load_spec_text
from blueprint.spec.lock import dump_lock

BASE = """\
name: t
vocab_size: 256
max_seq_len: 128
embed_dim: 64
num_layers: 4
norm: {kind: rmsnorm}
block:
  attention: {num_heads: 4}
  ffn: {kind: swiglu, hidden_dim: 128}
"""


def load(extra: str, base: str = BASE):
    return load_spec_text(base + extra, "t.yaml")


def issues(extra: str, base: str = BASE) -> list[str]:
    with pytest.raises(SpecError) as info:
        load(extra, base)
    return [f"{i.line}:{i.column}: {i.path}: {i.message}" for i in info.value.issues]


def test_every_new_field_validates_and_resolves():
    spec = load("positional: {kind: rope, layout: interleaved, scaling: {kind: yarn, factor: 4.0, "
                "original_max_seq_len: 32}}\n"
                "layers:\n  - {every: 2, set: {attention: {softcap: 50.0, qk_norm: true, qk_norm_scope: projection}}}\n"
                "  - {index: 3, set: {attention: {rope: false}}}\n").spec
    assert spec.block.attention.kind == "dot_product"
    assert [b.attention.softcap for b in spec.resolved_layers()] == [50.0, None, 50.0, None]
    assert [b.attention.rope for b in spec.resolved_layers()] == [True, True, True, False]
    assert spec.layer(2).attention.qk_norm_scope == "projection"
    assert spec.positional.scaling.attention_factor == pytest.approx(0.1 * math.log(4.0) + 1.0)
    assert "attention_factor: 1.1386" in dump_lock(spec)  # resolved once, written to the lock


def test_yarn_attention_factor_from_mscales_and_longrope_default():
    spec = load("positional: {kind: rope, scaling: {kind: yarn, factor: 40.0, original_max_seq_len: 4096, "
                "mscale: 1.0, mscale_all_dim: 0.707}}\n").spec
    m = lambda s: 0.1 * s * math.log(40.0) + 1.0  # noqa: E731
    assert spec.positional.scaling.attention_factor == pytest.approx(m(1.0) / m(0.707))
    spec = load("positional: {kind: rope, scaling: {kind: longrope, original_max_seq_len: 4096, factor: 32.0, "
                f"short_factor: {[1.0] * 8}, long_factor: {[2.0] * 8}}}}}\n").spec
    assert spec.positional.scaling.attention_factor == pytest.approx(math.sqrt(1 + math.log(32) / math.log(4096)))


def test_unknown_attention_kind_names_the_kinds():
    with pytest.raises(SpecError) as info:
        load("", BASE.replace("{num_heads: 4}", "{kind: linear, num_heads: 4}"))
    (issue,) = info.value.issues
    assert issue.path == "block.attention.kind" and "dot_product" in issue.hint


def test_rope_fields_need_rope_positions():
    found = issues("positional: {kind: alibi}\nlayers:\n  - {index: 1, set: {attention: {rope: false}}}\n"
                   "  - {index: 2, set: {attention: {rope_scaling: {kind: linear, factor: 2.0}}}}\n")
    assert found == [
        "12:40: layers.0.set.attention.rope: rope: false is set but positional.kind is 'alibi'; only RoPE can "
        "be turned off or scaled per layer (layer 1)",
        "13:48: layers.1.set.attention.rope_scaling: rope_scaling is set but positional.kind is 'alibi'; only "
        "RoPE can be turned off or scaled per layer (layer 2)"]


def test_longrope_needs_one_factor_per_rotary_pair():
    found = issues("positional: {kind: rope, rotary_fraction: 0.5, scaling: {kind: longrope, original_max_seq_len: 8, "
                   "factor: 4.0, short_factor: [1, 2, 3, 4, 5, 6, 7, 8], long_factor: [1, 2, 3, 4, 5, 6, 7, 8]}}\n")
    assert len(found) == 1 and "positional.scaling.short_factor: longrope needs one factor per rotary " \
        "frequency: head_dim (16) * rotary_fraction (0.5) / 2 = 4, got 8" in found[0]
    found = issues("positional: {kind: rope, scaling: {kind: longrope, original_max_seq_len: 8, "
                   "factor: 4.0, short_factor: [1, 2], long_factor: [1, 2, 3]}}\n")
    assert any("short_factor has 2 entries, long_factor 3" in f for f in found)


def test_llama3_frequency_factors_must_be_ordered():
    found = issues("positional: {kind: rope, scaling: {kind: llama3, factor: 8.0, low_freq_factor: 4.0, "
                   "high_freq_factor: 1.0, original_max_seq_len: 8192}}\n")
    assert len(found) == 1 and "high_freq_factor (1) must exceed low_freq_factor (4)" in found[0]


def test_qk_norm_scope_without_qk_norm_and_base_on_a_no_rope_layer_warn():
    loaded = load("positional: {kind: rope}\nlayers:\n  - {index: 0, set: {attention: {qk_norm_scope: projection, "
                  "rope: false, rope_base: 100.0}}}\n")
    found = sorted(w.message for w in loaded.warnings)
    assert "qk_norm_scope has no effect without qk_norm (layer 0)" in found
    assert "rope_base has no effect on a layer with rope: false, which rotates nothing (layer 0)" in found


@pytest.mark.parametrize("field, value", [("softcap", 0), ("softcap", -1.0)])
def test_softcap_must_be_positive(field, value):
    found = issues("", BASE.replace("{num_heads: 4}", f"{{num_heads: 4, {field}: {value}}}"))
    assert len(found) == 1 and f"block.attention.{field}" in found[0]


def test_learned_offset_grows_the_table():
    from compiler.naming import parameter_shapes

    spec = load("positional: {kind: learned, offset: 2}\n").spec
    assert parameter_shapes(spec)["embed.positions.weight"] == (130, 64)


def test_explain_shows_the_attention_fields():
    from blueprint.commands.explain import describe

    spec = load("positional: {kind: rope, layout: interleaved, scaling: {kind: yarn, factor: 4.0, "
                "original_max_seq_len: 32}}\n"
                "layers:\n  - {index: 0, set: {attention: {softcap: 50.0, qk_norm: true, qk_norm_scope: projection}}}\n"
                "  - {index: 1, set: {attention: {rope: false}}}\n"
                "  - {index: 2, set: {attention: {rope_base: 500.0, rope_scaling: {kind: linear, factor: 2.0}}}}\n").spec
    text = "\n".join(describe(spec, 1, None))
    assert "rope (base 10000, rotary_fraction 1, interleaved, scaling yarn x4 from 32, attention_factor 1.139)" in text
    rows = [line.split() for line in text.splitlines() if line.strip()[:1].isdigit() and "GQA" in line or "MHA" in line]
    rows = {r[0]: " ".join(r) for r in rows if r[0].isdigit()}
    assert "+qk_norm(proj),softcap 50" in rows["0"] and " off " in rows["1"] and "500 (linear x2)" in rows["2"]
    plain = "\n".join(describe(load("positional: {kind: learned, offset: 2}\n").spec, 1, None))
    assert "learned (offset 2)" in plain and "softcap" not in plain
