"""Every error at once: a schema error in one part of a spec hides no cross-field rule about
another part, and rules never wait for each other."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from blueprint import load_spec
from blueprint.errors import SpecError
from blueprint.spec.load import load_spec_file, load_spec_text
from blueprint.spec.partial import UNKNOWN, Unknown, known, salvage
from blueprint.spec.schema import AttentionSpec, ModelSpec

BASE = """\
name: t
vocab_size: 256
max_seq_len: 128
embed_dim: 64
num_layers: 4
positional: {kind: rope}
norm: {kind: rmsnorm}
block:
  attention: {num_heads: 4, num_kv_heads: 3, window: 500}
  ffn: {kind: swiglu, hidden_dim: 128}
layers:
  - {index: 9, set: {attn_norm: false}}
"""
# (line, path) of the three cross-field errors in BASE
RULE_ERRORS = [(9, "block.attention.num_kv_heads"), (9, "block.attention.window"),
               (12, "layers.0.index")]


def found(text: str) -> list[tuple[int, str]]:
    with pytest.raises(SpecError) as info:
        load_spec_text(text, "t.yaml")
    return [(i.line, i.path) for i in info.value.issues]


def test_cross_field_errors_of_different_stages_come_together():
    assert found(BASE) == RULE_ERRORS


@pytest.mark.parametrize(("old", "new", "schema_error"), [
    ("{kind: rmsnorm}", "{kind: rmsnrom}", (7, "norm.kind")),
    ("{kind: swiglu,", "{kind: swigelu,", (10, "block.ffn.kind")),
    ("window: 500}", "window: 500, qk_norm: maybe}", (9, "block.attention.qk_norm")),
    ("window: 500}", "window: 500, windw: 8}", (9, "block.attention.windw")),
    ("name: t", "name: t t", (1, "name")),
    ("max_seq_len: 128", "max_seq_len: 128\ndropout: {embed: 2.0}", (4, "dropout.embed")),
])
def test_a_schema_error_hides_no_rule_about_other_values(old, new, schema_error):
    text = BASE.replace(old, new)
    shift = new.count("\n")  # an inserted line moves the rule errors below it
    expected = [(line + shift, path) for line, path in RULE_ERRORS] + [schema_error]
    assert sorted(found(text)) == sorted(expected)


def test_a_rejected_embed_dim_hides_only_what_derives_from_it():
    # head_dim defaults to embed_dim // num_heads: the RoPE check cannot run, the others can
    assert sorted(found(BASE.replace("embed_dim: 64", "embed_dim: sixty"))) == sorted(
        RULE_ERRORS + [(4, "embed_dim")])


def test_embed_dim_not_divisible_hides_no_other_rule():
    assert found(BASE.replace("embed_dim: 64", "embed_dim: 66")) == [
        (9, "block.attention.num_heads"), *RULE_ERRORS]


def test_an_override_set_body_error_hides_no_rule_of_its_layer():
    text = BASE.replace("{index: 9, set: {attn_norm: false}}",
                        "{index: 1, set: {attention: {windw: 8, causal: false}}}")
    assert found(text) == RULE_ERRORS[:2] + [(12, "layers.0.set.attention.windw"),
                                             (12, "layers.0.set.attention.causal")]


def test_a_rejected_override_leaves_layers_unknown_but_not_the_block():
    # Which layers the broken override selects is unknown, so no per-layer finding is certain
    # (window); the block's own heads must agree whatever the overrides do.
    text = BASE.replace("{index: 9,", "{index: 1, every: 2,")
    assert found(text) == [(9, "block.attention.num_kv_heads"), (12, "layers.0")]


def test_warnings_travel_with_the_errors():
    with pytest.raises(SpecError) as info:
        load_spec_text(BASE.replace("vocab_size: 256", "vocab_size: 250"), "t.yaml")
    assert [w.path for w in info.value.warnings] == ["vocab_size"]
    assert all(i.severity == "error" for i in info.value.issues)
    assert "vocab_size" not in info.value.format()  # format() stays errors only


def test_direct_model_validation_still_refuses_heads_that_do_not_divide():
    with pytest.raises(ValidationError, match=r"num_heads \(4\) must be a multiple of num_kv"):
        AttentionSpec.model_validate({"num_heads": 4, "num_kv_heads": 3})


def test_tokenizer_path_must_exist_when_files_are_checked(tmp_path: Path):
    spec = tmp_path / "sub" / "s.yaml"
    spec.parent.mkdir()
    valid = (BASE.replace("num_kv_heads: 3, window: 500", "num_kv_heads: 2")
             .replace("index: 9", "index: 1"))
    spec.write_text(valid + "tokenizer: {vocab_size: 200, path: tok.json}\n")
    assert load_spec(spec).tokenizer.path == "tok.json"  # load_spec does not look at files
    with pytest.raises(SpecError) as info:
        load_spec_file(spec, check_files=True)
    (issue,) = info.value.issues
    assert (issue.file, issue.line, issue.column, issue.path) == (str(spec), 13, 36,
                                                                  "tokenizer.path")
    looked = str(spec.parent / "tok.json")
    assert issue.message == f"no tokenizer file at 'tok.json' (looked for {looked!r})"
    (spec.parent / "tok.json").write_text("{}")  # relative to the spec file, not the cwd
    assert load_spec_file(spec, check_files=True).spec.tokenizer.path == "tok.json"
    for odd in ('"a\\0b"', "x" * 5000, "/"):  # a NUL byte, a name too long, a directory
        spec.write_text(spec.read_text().replace("tok.json", odd))
        with pytest.raises(SpecError, match="no tokenizer file at"):
            load_spec_file(spec, check_files=True)
        spec.write_text(spec.read_text().replace(odd, "tok.json"))


def test_unknown_refuses_every_use():
    for use in (lambda: UNKNOWN.kind, lambda: UNKNOWN > 1, lambda: 1 < UNKNOWN,
                lambda: UNKNOWN == 3, lambda: bool(UNKNOWN), lambda: 4 % UNKNOWN,
                lambda: UNKNOWN * 0.5, lambda: f"{UNKNOWN}", lambda: range(UNKNOWN),
                lambda: UNKNOWN[0], lambda: getattr(UNKNOWN, "layers", None)):
        with pytest.raises(Unknown):
            use()
    assert UNKNOWN is not None and repr(UNKNOWN) == "UNKNOWN"


def test_salvage_keeps_what_validates_and_runs_the_model_validators_it_can():
    partial = salvage(ModelSpec, {
        "name": "t", "vocab_size": 0, "max_seq_len": 8, "embed_dim": 8, "num_layers": 2,
        "block": {"attention": {"num_heads": 2, "windw": 1}},
        "layers": [{"index": 0, "every": 2, "set": {}}, {"index": 1, "set": {}}]})
    assert partial.vocab_size is UNKNOWN and partial.max_seq_len == 8
    assert partial.block.attention.num_heads == 2  # the unknown key is dropped, not fatal
    assert partial.layers[0] is UNKNOWN  # two selectors: its own validator failed
    assert partial.layers[1].index == 1
    with pytest.raises(Unknown):
        known(partial)
