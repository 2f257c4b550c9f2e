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
