"""Cross-field rules: what they allow, what they warn about, and where overrides are blamed."""

from __future__ import annotations

import pytest

from blueprint.errors import SpecError
from blueprint.spec.load import load_spec_text

BASE = """\
name: t
vocab_size: 256
max_seq_len: 128
embed_dim: 64
num_layers: 4
positional: {kind: rope}
norm: {kind: rmsnorm}
block:
  attention: {num_heads: 4}
  ffn: {kind: swiglu, hidden_dim: 128}
"""


def load(extra: str = "", base: str = BASE):
    return load_spec_text(base + extra, "t.yaml")


def errors(extra: str = "", base: str = BASE) -> list[str]:
    with pytest.raises(SpecError) as info:
        load(extra, base)
    return [f"{i.line}:{i.column}: {i.path}: {i.message}" for i in info.value.issues]


def test_explicit_head_dim_may_differ_from_embed_dim():
    # LLaMA-style: q projection width num_heads * head_dim != embed_dim is allowed.
    spec = load(base=BASE.replace("{num_heads: 4}", "{num_heads: 6, head_dim: 16}")).spec
    assert spec.block.attention.head_dim == 16


def test_causal_layers_under_an_encoder_head_are_allowed():
    assert load("head: {kind: embeddings}\n").spec.block.attention.causal


def test_bidirectional_override_under_a_decoder_is_located_in_the_override():
    found = errors("layers:\n  - {index: 2, set: {attention: {causal: false}}}\n")
    assert found == ["12:42: layers.0.set.attention.causal: bidirectional attention (causal: false) "
                     "contradicts the causal_lm head: a decoder must not see the tokens it "
                     "predicts (layer 2)"]


def test_per_layer_errors_list_their_layers():
    found = errors("layers:\n  - {every: 2, set: {attention: {window: 500}}}\n")
    assert found == ["12:42: layers.0.set.attention.window: window (500) exceeds max_seq_len (128) (layers 0, 2)"]


def test_later_override_wins_and_is_the_one_blamed():
    found = errors("layers:\n  - {range: [0, 4], set: {attention: {window: 500}}}\n"
                   "  - {range: [1, 3], set: {attention: {window: 600}}}\n")
    assert found == [
        "12:47: layers.0.set.attention.window: window (500) exceeds max_seq_len (128) (layers 0, 3)",
        "13:47: layers.1.set.attention.window: window (600) exceeds max_seq_len (128) (layers 1-2)",
    ]


def test_override_that_breaks_head_divisibility_is_located_in_the_override():
    found = errors("layers:\n  - {index: 1, set: {attention: {num_heads: 3, num_kv_heads: 2}}}\n")
    assert found == ["12:45: layers.0.set.attention.num_heads: embed_dim (64) is not divisible by num_heads (3)",
                     "12:62: layers.0.set.attention.num_kv_heads: num_heads (3) must be a multiple "
                     "of num_kv_heads (2); use a divisor of 3 (equal for MHA, 1 for MQA)"]


def test_override_rope_base_is_fine_on_rope_models():
    spec = load("layers:\n  - {every: 3, set: {attention: {rope_base: 160000.0}}}\n").spec
    assert [b.attention.rope_base for b in spec.resolved_layers()] == [160000.0, None, None, 160000.0]


def test_partial_rotary_needs_an_even_rotary_dim_per_layer():
    base = BASE.replace("{kind: rope}", "{kind: rope, rotary_fraction: 0.25}")
    assert load(base=base).spec.positional.rotary_fraction == 0.25  # 16 * 0.25 = 4
    found = errors("layers:\n  - {index: 3, set: {attention: {head_dim: 12}}}\n", base=base)
    assert found == ["6:43: positional.rotary_fraction: RoPE needs an even rotary dimension: "
                     "head_dim (12) * rotary_fraction (0.25) = 3 (layer 3)"]


def test_tokenizer_special_ids_checked_against_model_vocab_without_tokenizer_vocab():
    assert errors("tokenizer: {pad_id: 256}\n") == [
        "11:21: tokenizer.pad_id: pad_id (256) is not a token id: the vocabulary has 256 ids (0..255)"]


def test_warnings_for_hardware_unfriendly_sizes_and_useless_ties():
    loaded = load_spec_text(BASE.replace("vocab_size: 256", "vocab_size: 250")
                            .replace("hidden_dim: 128", "hidden_dim: 100")
                            + "tie_embeddings: true\nhead: {kind: classification, num_labels: 2}\n", "t.yaml")
    found = [(w.path, w.message, w.hint) for w in loaded.warnings]
    assert found == [
        ("vocab_size", "vocab_size (250) is not a multiple of 64", "256 runs faster on most hardware"),
        ("block.ffn.hidden_dim", "ffn hidden_dim (100) is not a multiple of 64", "128 runs faster on most hardware"),
        ("tie_embeddings", "tie_embeddings has no effect: the 'classification' head has no "
         "vocabulary projection to tie", "remove tie_embeddings (or use a causal_lm / masked_lm head)"),
    ]
    assert all(w.severity == "warning" and "warning: " in w.format() for w in loaded.warnings)


def test_errors_do_not_include_warnings():
    with pytest.raises(SpecError) as info:
        load_spec_text(BASE.replace("vocab_size: 256", "vocab_size: 250") + "tokenizer: {vocab_size: 300}\n")
    assert [i.severity for i in info.value.issues] == ["error"]


def test_many_layers_validate():
    # Its speed is a target in benchmarks/bench_validate.py, not a timed unit test.
    spec = load(base=BASE.replace("num_layers: 4", "num_layers: 4096")
                + "layers:\n" + "".join(f"  - {{every: {k}, set: {{attn_norm: false}}}}\n" for k in range(1, 200))).spec
    assert spec.num_layers == 4096
    assert spec.layer(0).attn_norm is False and spec.layer(4095).attn_norm is False


def test_unknown_key_hints_prefer_the_right_home_or_the_near_miss():
    with pytest.raises(SpecError) as info:
        load(base=BASE.replace("{num_heads: 4}", "{num_heads: 4, bias: true}") + "rope_base: 5.0e+5\n")
    hints = {i.path: i.hint for i in info.value.issues}
    assert hints["block.attention.bias"] == "did you mean 'qkv_bias'? ('bias' is a key of head / block.ffn / norm)"
    assert hints["rope_base"] == "'rope_base' belongs in block.attention or positional"


def test_a_decoder_with_token_types_is_refused():
    """It used to validate and then fail at export with 'try another --opset'."""
    found = errors("type_vocab_size: 2\n")
    assert len(found) == 1 and "type_vocab_size: type_vocab_size (2) needs an encoder head" in found[0]


def test_attn_norm_false_has_nothing_to_drop_under_post_sublayer():
    found = errors("layers:\n  - {index: 1, set: {norm_placement: post_sublayer, attn_norm: false}}\n")
    assert found == ["12:38: layers.0.set.norm_placement: attn_norm: false drops an attention input "
                     "norm, but norm_placement post_sublayer has none (it normalises the sublayer "
                     "outputs only) (layer 1)"]
    assert load("layers:\n  - {index: 1, set: {norm_placement: post_sublayer}}\n").spec.layer(1).attn_norm


def test_norm_weight_offset_needs_a_weight():
    found = errors(base=BASE.replace("norm: {kind: rmsnorm}",
                                     "norm: {kind: layernorm, weight: false, weight_offset: 1.0}"))
    assert found == ["7:55: norm.weight_offset: weight_offset (1) is added to the weight, "
                     "but weight is false: remove weight_offset, or set weight: true"]


@pytest.mark.parametrize("text, message", [
    ("head: {kind: causal_lm, softcap: 0}", "11:34: head.softcap: input should be greater than 0 (got 0)"),
    ("embed_multiplier: -1.0", "11:19: embed_multiplier: input should be greater than 0 (got -1.0)"),
    ("block:\n  attention: {num_heads: 4}\n  residual_multiplier: 0.0",
     "10:24: block.residual_multiplier: input should be greater than 0 (got 0.0)"),
    ("block:\n  attention: {num_heads: 4}\n  residual: parallel_shared",
     "10:13: block.residual: 'parallel_shared' is not one of 'sequential', 'parallel', 'parallel_shared_norm'"),
])
def test_scaling_fields_are_checked(text, message):
    base = BASE.split("block:")[0] if text.startswith("block:") else BASE
    assert errors(text + "\n", base) == [message]
