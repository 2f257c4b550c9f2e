"""The loader: positions, duplicate keys, refused constructs, bounds, YAML 1.1 traps."""

from __future__ import annotations

import math

import pytest
import yaml

from blueprint.errors import SpecError
from blueprint.spec.load import load_spec_text
from blueprint.spec import yamlload
from blueprint.spec.yamlload import MAX_BYTES, MAX_DEPTH, MAX_NODES, load_yaml, resolve_plain

SPEC = """\
name: t
vocab_size: 256
max_seq_len: 128
embed_dim: 64
num_layers: 2
norm: {kind: layernorm, norm_eps: 1e-6}
block:
  attention: {num_heads: 4, causal: false}
head: {kind: masked_lm}
"""


def issues(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_yaml(text, "f.yaml")
    return [i.format() for i in info.value.issues]


def test_positions_for_keys_values_and_items():
    data, pos = load_yaml("a:\n  b: [1, {c: 2}]\n", "f.yaml")
    assert data == {"a": {"b": [1, {"c": 2}]}}
    assert pos.get(("a",)).key.line == 1 and pos.get(("a", "b")).key.column == 3
    assert (pos.get(("a", "b", 1, "c")).value.line, pos.get(("a", "b", 1, "c")).value.column) == (2, 14)
    assert pos.locate(("a", "b", 1, "missing")).column == 10  # nearest ancestor: the item


def test_duplicate_keys_name_both_lines_and_all_are_reported():
    found = issues("a: 1\nb: 2\na: 3\nc:\n  d: 1\n  d: 2\n")
    assert found[0].startswith("f.yaml:3:1: a: duplicate key 'a': first defined at line 1, again at line 3")
    assert found[1].startswith("f.yaml:6:3: c.d: duplicate key 'd': first defined at line 5, again at line 6")


@pytest.mark.parametrize("text", ["a: &x 1\nb: *x\n", "b: *x\n"])
def test_anchors_and_aliases_are_refused(text):
    assert "is not allowed" in issues(text)[0]


@pytest.fixture()
def composed(monkeypatch):
    """How many YAML nodes the loader composes: the work bound, counted instead of timed."""
    count = {"nodes": 0}
    original = yamlload._BoundedLoader.compose_node

    def counting(self, parent, index):
        count["nodes"] += 1
        return original(self, parent, index)

    monkeypatch.setattr(yamlload._BoundedLoader, "compose_node", counting)
    return count


def test_alias_bomb_is_refused_at_the_first_anchor(composed):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi"))
    assert "anchor &a is not allowed" in issues(bomb)[0]
    assert composed["nodes"] <= 3  # the root mapping, key 'a', its anchored value: then refused


@pytest.mark.parametrize("opener", ["[", "{a: ", "- "])
def test_deep_nesting_is_refused_early_without_recursion_error(opener, composed):
    # 40,000 nested brackets crash the C loader (segfault) and make the pure-Python loader
    # raise RecursionError; ours stops at MAX_DEPTH.
    text = opener * 40_000 if opener != "- " else "".join("  " * i + "-\n" for i in range(2000))
    found = issues(text[:MAX_BYTES])
    assert f"nesting deeper than {MAX_DEPTH} levels" in found[0]
    assert composed["nodes"] <= 2 * MAX_DEPTH + 2  # keys and values down one path, then refused


def test_size_and_node_count_are_bounded(composed):
    assert "specs are limited to" in issues("a: " + "x" * MAX_BYTES)[0]
    assert composed["nodes"] == 0  # refused before parsing
    assert "too many values" in issues("[" + "1, " * 20_000 + "]")[0]
    assert composed["nodes"] == MAX_NODES + 1  # stops at the bound, not at 20,000


def test_tags_are_refused_but_standard_ones_checked():
    assert "tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed" in issues(
        "a: !!python/object/apply:os.system [ls]\n")[0]
    assert load_yaml("a: !!float '1e-6'\nb: !!str 12\n")[0] == {"a": 1e-6, "b": "12"}
    assert "is not a valid !!int" in issues("a: !!int x\n")[0]


def test_syntax_error_and_bad_encoding_are_located():
    assert issues("a: [1, 2\n")[0].startswith("f.yaml:2:1: YAML syntax error")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_yaml(b"a: \xff\n", "f.yaml")
    with pytest.raises(SpecError, match="YAML syntax error"):
        load_yaml("a: 1\n---\nb: 2\n", "f.yaml")


@pytest.mark.parametrize(("text", "value"), [
    ("1e-6", 1e-6), ("1.0e-5", 1e-5), ("-2E+3", -2000.0), (".5", 0.5), ("7", 7), ("0", 0),
    ("0o17", 15), ("0x1F", 31), ("true", True), ("False", False), ("~", None), ("null", None),
    ("", None), ("no", "no"), ("off", "off"), ("yes", "yes"), ("on", "on"), ("12:30", "12:30"),
    ("1_000", "1_000"), ("gelu", "gelu"),
])
def test_plain_scalars_follow_yaml_1_2_core(text, value):
    assert resolve_plain(text) == value
    assert type(resolve_plain(text)) is type(value)


def test_yaml_1_1_traps_are_handled_deliberately():
    # PyYAML alone: 1e-6 is a string, `off` is False, 012 is 10.
    assert yaml.safe_load("a: 1e-6\nb: off\nc: 012\n") == {"a": "1e-6", "b": False, "c": 10}
    spec = load_spec_text(SPEC, "f.yaml").spec
    assert spec.norm.norm_eps == 1e-6 and isinstance(spec.norm.norm_eps, float)
    # `off` is the string "off" (YAML 1.2): a boolean field refuses it, as the JSON Schema does
    with pytest.raises(SpecError, match="causal: input should be a valid boolean .got 'off'.\n    hint: use true or false"):
        load_spec_text(SPEC.replace("causal: false", "causal: off"), "f.yaml")
    # ... and `no` where a string is expected stays the string "no", not False.
    assert load_spec_text(SPEC.replace("name: t", "name: no"), "f.yaml").spec.name == "no"
    assert "ambiguous number '012'" in issues("a: 012\n")[0]
    assert "write 12 for the decimal number" in issues("a: 012\n")[0]


def test_infinite_and_nan_values_are_rejected_by_the_schema():
    with pytest.raises(SpecError, match="finite number"):
        load_spec_text(SPEC.replace("1e-6", ".nan"), "f.yaml")
    assert math.isinf(resolve_plain("-.inf"))


def test_keys_must_be_scalars():
    assert "a key must be a plain name" in issues("? [a]\n: 1\n")[0]
