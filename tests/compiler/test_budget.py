"""compile_spec refuses a model that cannot fit in memory before allocating it (compiler.budget)."""

from __future__ import annotations

from pathlib import Path

import pytest

from blueprint.errors import BlueprintError
from blueprint.spec.load import load_spec_text
from compiler import compile_spec
from compiler.budget import available_memory, compile_bytes

HUGE = """\
extends: llama
name: huge
vocab_size: 1000000
embed_dim: 16384
num_layers: 64
block: {attention: {num_heads: 128}, ffn: {hidden_dim: 65536}}
"""


def test_a_model_that_cannot_fit_is_refused_with_the_estimate():
    spec = load_spec_text(HUGE, "huge.yaml", ".").spec
    need = compile_bytes(spec)
    assert need > 1 << 40 and need > available_memory()
    with pytest.raises(BlueprintError, match=r"'huge' has [\d,]+ parameters: compiling it needs about 1\.\d TiB "
                                             r"and this machine has [\d.]+ [GMT]iB available"):
        compile_spec(spec)
    meta = compile_spec(spec, device="meta")  # shapes only: no memory, no refusal
    assert next(meta.parameters()).is_meta


def test_sixteen_bit_specs_count_the_float32_draw_too():
    spec = load_spec_text(HUGE, "huge.yaml", ".").spec
    half = spec.model_copy(update={"dtype": "float16"})
    assert compile_bytes(half) == compile_bytes(spec) // 4 * 6


def test_a_build_that_cannot_fit_is_refused_before_compiling(tmp_path, monkeypatch):
    """A build holds more than the compiled graph (the ONNX initializers, verification's float64
    copy): refused from the estimate even when compiling alone would fit."""
    import blueprint
    from compiler import budget
    from compiler.export import build as build_mod

    spec_path = Path(__file__).resolve().parents[2] / "specs" / "llama-tiny.yaml"
    spec = blueprint.load_spec(spec_path)
    monkeypatch.setattr(budget, "available_memory", lambda: compile_bytes(spec) + 1)
    monkeypatch.setattr(build_mod, "default_compile", lambda *a, **k: pytest.fail("compiled"))
    with pytest.raises(BlueprintError, match=r"'llama-tiny' has [\d,]+ parameters: building it in fp32 needs about"):
        build_mod.build(spec_path, tmp_path / "out")
    assert budget.build_bytes(spec) == budget.compile_bytes(spec) // 4 * 16
    assert list(tmp_path.iterdir()) == []


def test_a_verification_that_cannot_fit_is_refused_before_compiling(tmp_path, monkeypatch):
    """A window of 10^8 makes verification's long-sequence case 2 * 10^8 tokens: the allocator
    used to fail inside verify after compiling and exporting (an 'internal error')."""
    from compiler.export import build as build_mod

    spec = tmp_path / "long.yaml"
    spec.write_text("name: long\nvocab_size: 64\nmax_seq_len: 1000000000\nembed_dim: 16\nnum_layers: 1\n"
                    "positional: {kind: rope}\nblock: {attention: {num_heads: 2, window: 100000000}}\n")
    monkeypatch.setattr(build_mod, "default_compile", lambda *a, **k: pytest.fail("compiled"))
    with pytest.raises(BlueprintError, match=r"verifying it \(a sequence longer than twice its widest window\) "
                                             r"needs about [\d.]+ PiB") as err:
        build_mod.build(spec, tmp_path / "out")
    assert "--no-verify" in err.value.format()
