"""Compiled GraphModule vs the independent plain-PyTorch reference (tests/compiler/reference.py):
forward outputs and gradients, for every tiny family spec and every mechanism variant.

Tolerance table (fp32, random weights of scale 0.2 so every path contributes):

| quantity                          | check                                          |
|-----------------------------------|------------------------------------------------|
| forward outputs (logits, hidden)  | max |ours - ref| <= 1e-5 * max(1, max |ref|)   |
| parameter gradients               | max |ours - ref| <= 1e-5 * max(1, max |ref|)   |

i.e. 1e-5 absolute for tensors of order one, 1e-5 relative for larger ones. The reference
runs in float64 (parameters cast from the model's), so the comparison measures the compiled
fp32 model's own error, not the sum of two fp32 roundings. Gradients are of a fixed
random projection of every output (probe entries ~ N(0, 1/numel)), so each element matters.
"""

from __future__ import annotations

import pytest
import torch

from compiler import compile_spec
from blueprint.spec.schema import ModelSpec
from helpers import BASE, TINY, merge, assert_close, canonical_params, encoder, load, make_inputs, randomize, variant, without_dropout
from reference import reference_forward

TOL = 1e-5


def moe_variant(moe: dict, **block):
    """The base variant with a mixture of experts as its FFN (replacing the MLP whole)."""
    data = merge(BASE, {"block": block})
    data["block"]["ffn"] = {"kind": "moe", **moe}
    return ModelSpec.model_validate(data)

VARIANTS = {
    "mha": variant(),
    "gqa": variant(block={"attention": {"num_kv_heads": 2}}),
    "mqa": variant(block={"attention": {"num_kv_heads": 1}}),
    "causal_window": variant(block={"attention": {"window": 3}}),
    "bidirectional": encoder(),
    "bidi_window": encoder(block={"attention": {"window": 4}}),
    "bidi_window_odd": encoder(block={"attention": {"window": 5}}),
    "rope_partial": variant(positional={"kind": "rope", "rotary_fraction": 0.5}),
    "rope_per_layer_base": variant(positional={"kind": "rope", "rope_base": 500.0},
                                   layers=[{"index": 1, "set": {"attention": {"rope_base": 20.0}}}]),
    "alibi": variant(positional={"kind": "alibi"}),
    "alibi_6_heads": variant(positional={"kind": "alibi"}, embed_dim=36, block={"attention": {"num_heads": 6}}),
    "alibi_bidi": encoder(positional={"kind": "alibi"}),
    "learned": variant(positional={"kind": "learned"}),
    "sinusoidal": variant(positional={"kind": "sinusoidal"}),
    "sinusoidal_base": variant(positional={"kind": "sinusoidal", "base": 50.0}),
    "no_positions": variant(positional={"kind": "none"}),
    "qk_norm_layernorm": variant(block={"attention": {"qk_norm": True}}),
    "qk_norm_rmsnorm": variant(norm={"kind": "rmsnorm"}, block={"attention": {"qk_norm": True}}),
    "biases": variant(block={"attention": {"qkv_bias": True, "out_bias": True}}),
    "no_biases": variant(block={"attention": {"qkv_bias": False}, "ffn": {"bias": False}}),
    "softmax_scale": variant(block={"attention": {"softmax_scale": 0.7}}),
    "head_dim": variant(block={"attention": {"head_dim": 12, "num_kv_heads": 2}}),
    "layernorm_no_bias": variant(norm={"kind": "layernorm", "bias": False}),
    "rmsnorm": variant(norm={"kind": "rmsnorm"}),
    "post_norm": variant(block={"norm_placement": "post"}),
    "sandwich": variant(block={"norm_placement": "sandwich"}),
    "attn_norm_false": variant(layers=[{"index": 0, "set": {"attn_norm": False}}]),
    "post_attn_norm_false": variant(block={"norm_placement": "post", "attn_norm": False}),
    "parallel": variant(block={"residual": "parallel"}),
    "parallel_post": variant(block={"residual": "parallel", "norm_placement": "post"}),
    "parallel_sandwich": variant(block={"residual": "parallel", "norm_placement": "sandwich"}),
    # norms: Gemma's (1 + w) RMSNorm, a LayerNorm with an offset, OLMo 1's non-parametric LayerNorm
    "rmsnorm_offset": variant(norm={"kind": "rmsnorm", "weight_offset": 1.0},
                              block={"attention": {"qk_norm": True}}),
    "layernorm_offset": variant(norm={"kind": "layernorm", "weight_offset": 1.0}),
    "layernorm_no_weight": variant(norm={"kind": "layernorm", "weight": False, "bias": False},
                                   embed_norm=True, block={"attention": {"qk_norm": True}}),
    "post_sublayer": variant(block={"norm_placement": "post_sublayer"}),
    "parallel_post_sublayer": variant(block={"norm_placement": "post_sublayer", "residual": "parallel"}),
    "parallel_shared_norm": variant(block={"residual": "parallel_shared_norm"}),
    "parallel_shared_norm_post": variant(block={"residual": "parallel_shared_norm", "norm_placement": "post"}),
    "parallel_shared_norm_sandwich": variant(block={"residual": "parallel_shared_norm",
                                                    "norm_placement": "sandwich"}),
    "parallel_shared_no_norm": variant(block={"residual": "parallel_shared_norm", "attn_norm": False}),
    # scaling: Granite's embedding / residual multipliers and logit divisor, Gemma 2's final cap
    "residual_multiplier": variant(block={"residual_multiplier": 0.3},
                                   layers=[{"index": 1, "set": {"residual_multiplier": 1.7}}]),
    "residual_multiplier_post": variant(block={"residual_multiplier": 0.5, "norm_placement": "post"}),
    "embed_multiplier": variant(embed_multiplier=5.656854249492381),
    "embed_multiplier_learned": variant(embed_multiplier=3.0, positional={"kind": "learned"}),
    "logit_scale": variant(head={"kind": "causal_lm", "logit_scale": 0.125}),
    "logit_softcap": variant(tie_embeddings=True, head={"kind": "causal_lm", "softcap": 1.5,
                                                        "logit_scale": 2.0}),
    **{f"mlp_{a}": variant(block={"ffn": {"activation": a}}) for a in ("gelu", "gelu_tanh", "relu", "relu2", "silu")},
    "swiglu": variant(block={"ffn": {"kind": "swiglu"}}),
    "geglu": variant(block={"ffn": {"kind": "geglu"}}),
    "geglu_tanh": variant(block={"ffn": {"kind": "geglu", "activation": "gelu_tanh"}}),
    **{f"moe_{name}": moe_variant({"num_experts": 4, "top_k": k, "expert": expert, **extra})
       for name, k, expert, extra in (
           ("swiglu_top2", 2, {"kind": "swiglu", "hidden_dim": 24}, {}),
           ("mlp_bias_unnormalized", 3, {"kind": "mlp", "activation": "gelu", "hidden_dim": 20, "bias": True},
            {"router": {"normalize_top_k": False, "bias": True}}),
           ("geglu_shared_gate", 1, {"kind": "geglu", "hidden_dim": 16},
            {"shared_expert": {"kind": "swiglu", "hidden_dim": 12}, "shared_expert_gate": "sigmoid"}),
           ("shared_ungated_all", 4, {"kind": "swiglu", "hidden_dim": 16},
            {"shared_expert": {"kind": "mlp", "hidden_dim": 8}}))},
    "moe_post_parallel": moe_variant({"num_experts": 3, "top_k": 2, "expert": {"kind": "swiglu", "hidden_dim": 16}},
                                     norm_placement="post", residual="parallel"),
    "causal_lm_tied_bias": variant(tie_embeddings=True, head={"kind": "causal_lm", "bias": True}),
    "causal_lm_untied": variant(tie_embeddings=False),
    "final_norm_off": variant(final_norm=False),
    "embed_norm": variant(embed_norm=True),
    "masked_lm_tied": encoder(tie_embeddings=True, head={"kind": "masked_lm"}),
    "masked_lm_untied": encoder(head={"kind": "masked_lm", "activation": "gelu_tanh",
                                      "dense_bias": False, "decoder_bias": False}),
    "embeddings_cls_pooler": encoder(head={"kind": "embeddings", "pooling": "cls", "pooler": "dense_tanh"}),
    "embeddings_mean_normalize": encoder(head={"kind": "embeddings", "pooling": "mean", "normalize": True}),
    "embeddings_last": encoder(head={"kind": "embeddings", "pooling": "last"}),
    "classification": encoder(head={"kind": "classification", "num_labels": 3, "pooler": "dense_tanh"}),
    "classification_mean": encoder(head={"kind": "classification", "num_labels": 5, "pooling": "mean"}),
    "token_types": encoder(type_vocab_size=3, positional={"kind": "learned"}),
    # attention and positions (issue 13)
    "rope_interleaved": variant(positional={"kind": "rope", "layout": "interleaved"}),
    "rope_interleaved_partial": variant(positional={"kind": "rope", "layout": "interleaved", "rotary_fraction": 0.5}),
    "rope_linear": variant(positional={"kind": "rope", "scaling": {"kind": "linear", "factor": 2.5}}),
    "rope_llama3": variant(positional={"kind": "rope", "rope_base": 10.0, "scaling": {
        "kind": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_seq_len": 32}}),
    "rope_yarn": variant(positional={"kind": "rope", "rope_base": 100.0, "scaling": {
        "kind": "yarn", "factor": 4.0, "original_max_seq_len": 16}}),
    "rope_yarn_mscale_untruncated": variant(positional={"kind": "rope", "rope_base": 100.0, "scaling": {
        "kind": "yarn", "factor": 4.0, "original_max_seq_len": 16, "mscale": 0.707, "mscale_all_dim": 1.0,
        "beta_fast": 8.0, "truncate": False}}),
    "rope_longrope_long": variant(positional={"kind": "rope", "scaling": {
        "kind": "longrope", "short_factor": [1.0, 1.5, 2.0, 3.0], "long_factor": [2.0, 3.0, 5.0, 9.0],
        "original_max_seq_len": 4, "factor": 8.0}}),
    "rope_longrope_short": variant(positional={"kind": "rope", "scaling": {
        "kind": "longrope", "short_factor": [1.0, 1.5, 2.0, 3.0], "long_factor": [2.0, 3.0, 5.0, 9.0],
        "original_max_seq_len": 16, "factor": 2.0}}),
    "rope_scaling_per_layer": variant(layers=[{"index": 1, "set": {"attention": {
        "rope_scaling": {"kind": "linear", "factor": 4.0}, "rope_base": 50.0}}}]),
    "rope_off_on_a_layer": variant(block={"attention": {"num_kv_heads": 2}},
                                   layers=[{"every": 2, "offset": 1, "set": {"attention": {"rope": False}}}]),
    "softcap": variant(block={"attention": {"softcap": 2.0}}),
    "softcap_gqa_window_one_layer": variant(block={"attention": {"num_kv_heads": 2, "window": 3}},
                                            layers=[{"index": 0, "set": {"attention": {"softcap": 1.5}}}]),
    "softcap_bidi_alibi": encoder(positional={"kind": "alibi"}, block={"attention": {"softcap": 3.0}}),
    "qk_norm_projection_rms": variant(norm={"kind": "rmsnorm"}, block={"attention": {
        "qk_norm": True, "qk_norm_scope": "projection", "num_kv_heads": 2}}),
    "qk_norm_projection_layernorm": variant(block={"attention": {"qk_norm": True, "qk_norm_scope": "projection"}}),
    "learned_offset": variant(positional={"kind": "learned", "offset": 2}),
    "learned_offset_encoder": encoder(positional={"kind": "learned", "offset": 2}),
}


def compare(spec, *, pad=None, s=7):
    torch.manual_seed(0)
    gm = compile_spec(spec).eval()  # eval: dropout off; gradients still flow
    randomize(gm)
    feeds = make_inputs(spec, 3, s, pad=pad or [0, 2, 0])
    params = {k: v.detach().double().requires_grad_(True) for k, v in canonical_params(gm, spec).items()}
    ref = reference_forward(spec, params, **feeds)
    ours = gm(*feeds.values())
    assert list(ours) == list(ref)
    g = torch.Generator().manual_seed(5)
    probes = {k: torch.randn(v.shape, generator=g) / v.numel() ** 0.5 for k, v in ours.items()}
    for k in ours:
        assert_close(ours[k], ref[k], k)
    sum((ours[k] * probes[k]).sum() for k in ours).backward()
    sum((ref[k] * probes[k].double()).sum() for k in ref).backward()
    named = dict(gm.named_parameters())  # tied duplicates appear once, as embed.tokens.weight
    for name, p in params.items():
        ours_grad = named[name].grad
        assert ours_grad is not None, f"no gradient for {name}"
        assert_close(ours_grad, p.grad, f"gradient of {name}")


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_matches_reference(name):
    compare(VARIANTS[name])


@pytest.mark.parametrize("name", TINY)
def test_family_matches_reference(name):
    spec = without_dropout(load(name))
    compare(spec, s=12)
