"""`blueprint schema` output: draft-07 (yaml-language-server), accepting every shipped spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blueprint.spec.json_schema import spec_json_schema
from blueprint.spec.yamlload import load_yaml

jsonschema = pytest.importorskip("jsonschema")
SPECS = sorted((Path(__file__).parent.parent.parent / "specs").glob("*.yaml"))


@pytest.fixture(scope="module")
def validator():
    schema = spec_json_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_schema_is_draft7_without_2020_keywords():
    schema = spec_json_schema()
    text = json.dumps(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert "$defs" not in text and "prefixItems" not in text
    refs = {ref for ref in _values(schema, "$ref")}
    assert refs and all(r.startswith("#/definitions/") and r.split("/")[-1] in schema["definitions"] for r in refs)


def _values(node, key):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from _values(v, key)
    elif isinstance(node, list):
        for v in node:
            yield from _values(v, key)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_every_shipped_spec_satisfies_the_schema(validator, path):
    data, _ = load_yaml(path.read_text())
    assert [e.message for e in validator.iter_errors(data)] == []


def test_schema_rejects_what_the_loader_rejects(validator):
    data, _ = load_yaml((SPECS[0].parent / "llama.yaml").read_text())
    data["block"]["attention"]["windw"] = 8
    data["norm"]["kind"] = "rmsnrom"
    data["layers"] = [{"index": 0, "set": {"atention": {}}}]
    paths = sorted(tuple(e.absolute_path) for e in validator.iter_errors(data))
    assert paths == [("block", "attention"), ("layers", 0, "set"), ("norm",)]
    assert list(validator.iter_errors({"name": "x"}))  # required keys without extends


def test_extends_files_may_be_partial(validator):
    assert list(validator.iter_errors({"extends": "llama", "num_layers": 4,
                                       "block": {"ffn": {"hidden_dim": 5}}})) == []
    assert list(validator.iter_errors({"extends": "llama", "block": {"ffn": {"hiden_dim": 5}}}))


_BASE = """\
name: t
vocab_size: 256
max_seq_len: 128
embed_dim: 64
num_layers: 2
norm: {kind: layernorm, norm_eps: 1.0e-5}
block:
  attention: {num_heads: 4, causal: true}
  ffn: {kind: mlp, hidden_dim: 256}
"""


@pytest.mark.parametrize(("old", "new"), [
    ("embed_dim: 64", 'embed_dim: "64"'), ("embed_dim: 64", 'embed_dim: " 64 "'),
    ("embed_dim: 64", "embed_dim: 6_4"), ("num_layers: 2", "num_layers: true"),
    ("causal: true", 'causal: "yes"'), ("causal: true", "causal: 1"), ("causal: true", "causal: on"),
    ("norm_eps: 1.0e-5", 'norm_eps: "1.0e-5"'), ("norm_eps: 1.0e-5", "norm_eps: true"),
])
def test_the_validator_refuses_what_the_json_schema_refuses(validator, old, new):
    """No silent coercion: a value the published schema rejects is an error, not a guess."""
    from blueprint.errors import SpecError
    from blueprint.spec.load import load_spec_text

    text = _BASE.replace(old, new)
    assert text != _BASE
    data, _ = load_yaml(text, "t.yaml")
    assert list(validator.iter_errors(data)), "the JSON Schema accepts it"
    with pytest.raises(SpecError, match="input should be a valid"):
        load_spec_text(text, "t.yaml")


@pytest.mark.parametrize("new", ["vocab_size: 2.56e2", "vocab_size: 256.0"])
def test_a_size_written_as_a_float_is_refused(new):
    """Draft-07 counts 256.0 as an integer; blueprint does not: a size written as a float or in
    exponent form is refused with the integer to write instead."""
    from blueprint.errors import SpecError
    from blueprint.spec.load import load_spec_text

    with pytest.raises(SpecError, match="vocab_size: input should be a valid integer .got 256.0.\n    hint: write 256"):
        load_spec_text(_BASE.replace("vocab_size: 256", new), "t.yaml")


@pytest.mark.parametrize(("old", "new"), [
    ("norm_eps: 1.0e-5", "norm_eps: 1e-5"), ("norm_eps: 1.0e-5", "norm_eps: 1"),
    ("num_layers: 2", "num_layers: 0x2"),
])
def test_the_validator_accepts_what_the_json_schema_accepts(validator, old, new):
    from blueprint.spec.load import load_spec_text

    data, _ = load_yaml(_BASE.replace(old, new), "t.yaml")
    assert not list(validator.iter_errors(data))
    load_spec_text(_BASE.replace(old, new), "t.yaml")


def test_the_json_schema_accepts_every_generated_valid_spec(validator):
    """The other direction of agreement: whatever the generator of valid specs (every field of
    the language) produces, the published schema accepts too."""
    import sys

    from hypothesis import given, settings

    sys.path.insert(0, str(Path(__file__).parent))
    import test_spec_properties as gen

    @settings(gen.FAST, max_examples=300)
    @given(gen.valid_specs())
    def check(raw):
        assert [e.message for e in validator.iter_errors(raw)] == []

    check()
