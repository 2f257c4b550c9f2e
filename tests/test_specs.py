"""Every shipped spec is a test case: it validates, its lock file round-trips, explain runs,
and the big ones have the reference implementations' parameter counts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from blueprint import dump_lock, load_spec, load_spec_text, load_spec_with_warnings
from blueprint.commands.explain import describe
from blueprint.spec.extends import preset_names, preset_path
from blueprint.spec.schema import ModelSpec
from compiler.naming import parameter_count

SPECS = sorted((Path(__file__).parent.parent / "specs").glob("*.yaml"))
FAMILIES = ["gpt", "gpt2", "llama", "mistral", "bert", "modernbert"]

# Counts of the reference implementations (transformers): GPT2LMHeadModel with tied embeddings,
# BertModel with pooler, ModernBertModel (no MLM head).
REFERENCE_PARAMS = {"gpt2": 124_439_808, "bert": 109_482_240, "modernbert": 149_014_272,
                    # GemmaForCausalLM / GraniteForCausalLM built from gemma-2b's and
                    # granite-3.0-2b's published configs (tied embeddings)
                    "gemma": 2_506_172_416, "granite": 2_533_531_648}


def test_every_family_has_a_spec_and_a_tiny_variant():
    names = {p.stem for p in SPECS}
    for family in FAMILIES:
        assert family in names and f"{family}-tiny" in names


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_spec_validates_and_names_itself(path: Path):
    spec, warnings = load_spec_with_warnings(path)
    assert spec.name == path.stem
    assert all(w.severity == "warning" for w in warnings)
    # The loader agrees with plain schema validation (the specs avoid YAML 1.1 traps).
    assert ModelSpec.model_validate(yaml.safe_load(path.read_text())) == spec


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_lock_round_trips(path: Path):
    spec = load_spec(path)
    lock = dump_lock(spec)
    assert load_spec_text(lock, "spec.lock.yaml").spec == spec
    assert ModelSpec.model_validate(yaml.safe_load(lock)) == spec
    assert dump_lock(load_spec_text(lock).spec) == lock  # a fixed point


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_explain_runs(path: Path):
    spec = load_spec(path)
    text = "\n".join(describe(spec, batch=1, seq_len=None))
    assert f"{parameter_count(spec):,}" in text
    rows = [line for line in text.splitlines() if re.match(r"^\s*\d+\s+(MHA|GQA|MQA)\s", line)]
    assert len(rows) == spec.num_layers  # one row per layer


@pytest.mark.parametrize("family", sorted(REFERENCE_PARAMS))
def test_parameter_counts_match_reference_implementations(family: str):
    spec = load_spec(Path(__file__).parent.parent / "specs" / f"{family}.yaml")
    assert parameter_count(spec) == REFERENCE_PARAMS[family]
    assert f"total       {REFERENCE_PARAMS[family]:,}" in "\n".join(describe(spec, 1, None))


def test_presets_are_the_published_specs():
    assert preset_names() == sorted(FAMILIES)
    for family in FAMILIES:
        published = Path(__file__).parent.parent / "specs" / f"{family}.yaml"
        assert preset_path(family).read_text() == published.read_text()
