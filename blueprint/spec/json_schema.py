"""The spec language as a JSON Schema (draft-07) for editors (yaml-language-server).

pydantic emits draft 2020-12 (``$defs``, ``prefixItems``). yaml-language-server and most editor
tooling speak draft-07, so we rewrite: ``$defs`` -> ``definitions``, ``prefixItems`` -> array
``items`` with ``additionalItems: false``. We also encode what pydantic's schema cannot say:

- ``kind`` is required in every tagged-union variant (pydantic requires the tag in input), and
  only there (``init.kind`` has a default);
- a file with ``extends:`` may omit anything, so it is checked against "partial" copies of the
  definitions with nothing required (and ``anyOf`` for unions, since ``kind`` may be omitted);
- an override's ``set`` is a partial block, not an arbitrary mapping.

Semantic rules (divisibility, windows, layer indexes) are beyond JSON Schema; ``blueprint
validate`` checks them.
"""

from __future__ import annotations

import copy
from typing import Any

from blueprint.spec.schema import ModelSpec

DRAFT7 = "http://json-schema.org/draft-07/schema#"
PARTIAL = "Partial"


def _rewrite(node: Any, partial: bool) -> Any:
    """Recursively convert one pydantic schema node to draft-07 (``partial``: drop required)."""
    if isinstance(node, list):
        return [_rewrite(v, partial) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref":
            name = value.rsplit("/", 1)[-1]
            out[key] = f"#/definitions/{name}{PARTIAL if partial else ''}"
        elif key == "discriminator" and isinstance(value, dict):
            mapping = {tag: f"#/definitions/{ref.rsplit('/', 1)[-1]}{PARTIAL if partial else ''}"
                       for tag, ref in value.get("mapping", {}).items()}
            out[key] = {**value, "mapping": mapping}
        elif key == "prefixItems":
            out["items"] = _rewrite(value, partial)
            out["additionalItems"] = False
        elif key == "required" and partial:
            continue
        elif key == "oneOf" and partial:  # without ``kind`` several variants may match
            out["anyOf"] = _rewrite(value, partial)
        elif key == "properties":
            out[key] = {name: _rewrite(prop, partial) for name, prop in value.items()}
        else:
            out[key] = _rewrite(value, partial)
    return out


def _union_members(node: Any) -> set[str]:
    """Names of the models that are variants of a tagged union (those pydantic picks by
    ``kind``, so the tag is required in their input); ``init``'s ``kind`` stays optional."""
    found: set[str] = set()
    if isinstance(node, dict):
        mapping = node.get("discriminator", {}).get("mapping", {}) if isinstance(node.get("discriminator"), dict) else {}
        found |= {ref.rsplit("/", 1)[-1] for ref in mapping.values()}
        for value in node.values():
            found |= _union_members(value)
    elif isinstance(node, list):
        for value in node:
            found |= _union_members(value)
    return found


def _definitions(pydantic_schema: dict[str, Any], partial: bool) -> dict[str, Any]:
    defs = {}
    root = {k: v for k, v in pydantic_schema.items() if k != "$defs"}
    tagged = _union_members(pydantic_schema)
    for name, body in {**pydantic_schema.get("$defs", {}), "ModelSpec": root}.items():
        body = _rewrite(body, partial)
        props = body.get("properties", {})
        if not partial and name in tagged and "kind" in props and "const" in props["kind"]:
            body["required"] = sorted(set(body.get("required", [])) | {"kind"})
        if name == "LayerOverride":
            props["set"] = {"$ref": f"#/definitions/BlockSpec{PARTIAL}",
                            "description": "block fields to change on the selected layers"}
        defs[name + (PARTIAL if partial else "")] = body
    return defs


def spec_json_schema() -> dict[str, Any]:
    """A draft-07 JSON Schema for spec files (with or without ``extends``)."""
    source = ModelSpec.model_json_schema(mode="validation")
    definitions = {**_definitions(source, partial=False), **_definitions(source, partial=True)}
    partial_root = copy.deepcopy(definitions["ModelSpec" + PARTIAL])
    partial_root["properties"] = {
        "extends": {"type": "string", "minLength": 1,
                    "description": "a preset name (gpt, gpt2, llama, mistral, bert, modernbert) "
                                   "or a spec file path relative to this file"},
        **partial_root["properties"],
    }
    definitions["ModelSpec" + PARTIAL] = partial_root
    return {
        "$schema": DRAFT7,
        "title": "blueprint spec",
        "description": "A transformer declared in YAML (see README: spec language).",
        "type": "object",
        "if": {"required": ["extends"]},
        "then": {"$ref": f"#/definitions/ModelSpec{PARTIAL}"},
        "else": {"$ref": "#/definitions/ModelSpec"},
        "definitions": definitions,
    }
