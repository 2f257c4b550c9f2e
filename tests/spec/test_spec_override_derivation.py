"""Derived defaults follow what they derive from, after merging, for ``layers:`` as for ``extends:``."""

from __future__ import annotations

import pytest

import blueprint
from blueprint.errors import SpecError
from blueprint.spec.load import load_spec_text

BASE = """\
name: t
vocab_size: 256
max_seq_len: 128
embed_dim: 64
num_layers: 4
block:
  attention: {num_heads: 4%s}
layers:
%s
"""


def _heads(text):
    spec = load_spec_text(text, "t.yaml").spec
    assert load_spec_text(blueprint.dump_lock(spec), "lock.yaml").spec == spec  # the lock states them
    return [(b.attention.num_heads, b.attention.num_kv_heads, b.attention.head_dim) for b in spec.resolved_layers()]


def test_an_override_of_num_heads_rederives_like_extends(tmp_path):
    text = BASE % ("", "  - every: 2\n    set: {attention: {num_heads: 8}}")
    assert _heads(text) == [(8, 8, 8), (4, 4, 16), (8, 8, 8), (4, 4, 16)]
    # extends with the same change derives the same values
    (tmp_path / "base.yaml").write_text((BASE % ("", "  []")).replace("layers:\n  []", ""))
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nblock: {attention: {num_heads: 8}}\n")
    child = blueprint.load_spec(tmp_path / "child.yaml")
    assert (child.layer(0).attention.num_kv_heads, child.layer(0).attention.head_dim) == (8, 8)


def test_values_written_explicitly_hold():
    # written in block: they hold for every layer, as through extends
    assert _heads(BASE % (", num_kv_heads: 2, head_dim: 16", "  - index: 1\n    set: {attention: {num_heads: 8}}")
                  ) == [(4, 2, 16), (8, 2, 16), (4, 2, 16), (4, 2, 16)]
    # written in the override itself
    assert _heads(BASE % ("", "  - index: 1\n    set: {attention: {num_heads: 8, num_kv_heads: 2}}")
                  )[1] == (8, 2, 8)
    # written by an earlier override on the same layers: the merge keeps it
    assert _heads(BASE % ("", "  - index: 1\n    set: {attention: {head_dim: 32}}\n"
                              "  - index: 1\n    set: {attention: {num_heads: 8}}"))[1] == (8, 8, 32)


def test_derivations_that_cannot_hold_are_errors():
    with pytest.raises(SpecError, match=r"layers.0.set.attention.num_heads: embed_dim \(64\) is not divisible by "
                                        r"num_heads \(6\)\n    hint: choose num_heads dividing 64, or set head_dim"):
        load_spec_text(BASE % ("", "  - index: 1\n    set: {attention: {num_heads: 6}}"), "t.yaml")
    with pytest.raises(SpecError, match="layers.1.set.attention.num_heads: an earlier override sets head_dim on only "
                                        "some of the layers"):
        load_spec_text(BASE % ("", "  - index: 1\n    set: {attention: {head_dim: 32}}\n"
                                   "  - every: 1\n    set: {attention: {num_heads: 8}}"), "t.yaml")


def test_a_spec_built_in_python_resolves_like_yaml():
    """``ModelSpec(...)`` (the Python API) left the block unresolved (num_kv_heads and head_dim
    None: pydantic ignores a new instance returned from __init__'s validator) and did not
    re-derive overrides given as LayerOverride objects."""
    from blueprint.spec.schema import AttentionSpec, BlockSpec, LayerOverride, ModelSpec

    built = ModelSpec(name="t", vocab_size=256, max_seq_len=128, embed_dim=64, num_layers=4,
                      block=BlockSpec(attention=AttentionSpec(num_heads=4)),
                      layers=[LayerOverride(every=2, set={"attention": {"num_heads": 8}})])
    loaded = load_spec_text(BASE % ("", "  - every: 2\n    set: {attention: {num_heads: 8}}"), "t.yaml").spec
    assert built == loaded
    assert (built.block.attention.num_kv_heads, built.block.attention.head_dim) == (4, 16)
    assert built.layer(0).attention.head_dim == 8
