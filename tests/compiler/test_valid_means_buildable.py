"""Valid means buildable: any spec the validator accepts compiles and runs a forward pass.

The specs come from the spec tests' generators, which cover every field of the language (token
types, dropout, tying, dtype, heads and their options, overrides that re-derive head sizes, ...)
plus random mutations of them; whatever ``load_spec`` accepts must compile with
``compile_spec`` and give finite outputs of the contract's shapes, in train mode (dropout,
checkpointing) and in eval mode with a padded batch. A spec too big for this machine may be
refused by compiler.budget with a BlueprintError, never with anything else.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from blueprint.errors import BlueprintError, SpecError
from blueprint.spec.load import load_spec_text
from blueprint.spec.lock import dump_yaml
from compiler import compile_spec
from compiler.signature import input_names

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "spec"))
import test_spec_properties as gen  # noqa: E402  (the generators; its tests stay in their own file)

SMALL = 4_000_000  # parameters; bigger accepted specs are checked by size only (time, not meaning)


def _forward(gm, spec, train: bool) -> dict:
    torch.manual_seed(0)
    b, s = 2, max(1, min(spec.max_seq_len, 7))
    ids = torch.randint(0, spec.vocab_size, (b, s))
    mask = torch.ones(b, s, dtype=torch.int64)
    mask[1, s - (s // 2):] = 0 if s > 1 else 1  # a right-padded row (never fully masked)
    feeds = {"input_ids": ids, "attention_mask": mask, "position_ids": torch.arange(s).expand(b, s),
             "token_type_ids": torch.randint(0, max(1, spec.type_vocab_size), (b, s))}
    gm.train(train)
    with torch.set_grad_enabled(train):
        return gm(*[feeds[n] for n in input_names(spec, False)]), b, s


@settings(gen.FAST, max_examples=100)
@given(st.one_of(gen.valid_specs(), gen.mutated_specs()))
def test_every_accepted_spec_compiles_and_runs(raw):
    try:
        spec = load_spec_text(dump_yaml(raw), "gen.yaml").spec
    except SpecError:
        return  # rejected: the validator's business, tested in tests/spec
    from compiler.cost import params_by_component

    if sum(params_by_component(spec).values()) > SMALL:
        try:
            compile_spec(spec, device="meta")
        except BlueprintError:
            pass
        return
    try:
        gm = compile_spec(spec)
    except BlueprintError as err:  # a {memory_budget} too small for this model: said before any work
        assert "memory_budget" in str(err) and "cannot be met" in str(err), err
        gm = compile_spec(spec, checkpointing=False)  # the graph itself still compiles and runs
    dtype = getattr(torch, spec.dtype)
    assert {p.dtype for p in gm.parameters()} == {dtype}
    for train in (True, False):
        out, b, s = _forward(gm, spec, train)
        for name, value in out.items():
            assert value.shape[:1] == (b,), name
            assert bool(torch.isfinite(value.float()).all()) or spec.dtype != "float32", (name, train)
        if train:
            loss = sum(v.float().sum() for v in out.values())
            loss.backward()


def test_every_positional_kind_compiles_on_the_meta_device():
    """Found by the property above: ALiBi read its slopes from a tensor created on the default
    device, which under device='meta' has no values."""
    base = "name: m\nvocab_size: 64\nmax_seq_len: 16\nembed_dim: 16\nnum_layers: 1\nblock: {attention: {num_heads: 2}}\n"
    for kind in ("learned", "sinusoidal", "rope", "alibi", "none"):
        spec = load_spec_text(base + f"positional: {{kind: {kind}}}\n", "m.yaml").spec
        gm = compile_spec(spec, device="meta")
        assert all(p.is_meta for p in gm.parameters()), kind


@pytest.mark.slow
@settings(gen.FAST, max_examples=12)
@given(gen.valid_specs())
def test_every_accepted_spec_builds_and_verifies(raw):
    """The whole way (slow: an export each): accepted specs export to ONNX and onnxruntime
    matches the float64 reference under the build's verification gate (bfloat16: a clear
    refusal)."""
    import tempfile

    from compiler.export.build import build

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gen.yaml"
        path.write_text(dump_yaml(raw))
        if raw.get("dtype") == "bfloat16":
            with pytest.raises(BlueprintError, match="no bfloat16 kernels"):
                build(path, Path(tmp) / "out")
            return
        try:
            result = build(path, Path(tmp) / "out")
        except BlueprintError as err:  # fp16 can overflow with a large init std: said plainly
            assert raw.get("dtype") == "float16" and "non-finite" in err.format(), err.format()
            return
        assert result.report.ok
