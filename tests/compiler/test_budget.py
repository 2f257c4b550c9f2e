"""compile_spec refuses a model that cannot fit in memory before allocating it (compiler.budget)."""

from __future__ import annotations

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
