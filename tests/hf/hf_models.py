"""Tiny seeded transformers reference models for each family, saved with save_pretrained.

The families come from the registry (``blueprint.families``); each registered model_type has
ONE row in ``_configs`` here: the transformers class and a small config built from
transformers' own config class (docs/architecture.md, "Adding a family").

Weights are re-drawn with a larger spread than transformers' 0.02 init (norm weights around 1)
so that mistakes in layout (a transposition, swapped GeGLU halves, a wrong window) change the
outputs by far more than the test tolerances.
"""

from __future__ import annotations

from pathlib import Path

import torch

VOCAB = 96


def _configs():
    import transformers as T

    common_dec = dict(vocab_size=VOCAB, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return {
        "gpt2": (T.GPT2LMHeadModel, T.GPT2Config(
            n_positions=64, n_embd=32, n_layer=2, n_head=4, activation_function="gelu_new",
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **common_dec)),
        "llama": (T.LlamaForCausalLM, T.LlamaConfig(
            hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5,
            tie_word_embeddings=False, **common_dec)),
        "mistral": (T.MistralForCausalLM, T.MistralConfig(
            hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5, sliding_window=5,
            tie_word_embeddings=False, **common_dec)),
        "qwen2": (T.Qwen2ForCausalLM, T.Qwen2Config(  # q/k/v bias; a window on layer 1 only
            hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5, use_sliding_window=True,
            sliding_window=4, max_window_layers=1, tie_word_embeddings=False, **common_dec)),
        "qwen3": (T.Qwen3ForCausalLM, T.Qwen3Config(  # per-head q/k RMSNorm, head_dim != D / H, tied
            hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, max_position_embeddings=128, rms_norm_eps=1e-5,
            tie_word_embeddings=True, **common_dec)),
        "gpt_neox": (T.GPTNeoXForCausalLM, T.GPTNeoXConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=64, hidden_dropout=0.0, attention_dropout=0.0,
            rope_parameters={"rope_theta": 10000.0, "rope_type": "default", "partial_rotary_factor": 0.5},
            use_parallel_residual=True, tie_word_embeddings=False, **common_dec)),
        "phi": (T.PhiForCausalLM, T.PhiConfig(
            hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, qk_layernorm=True,
            rope_parameters={"rope_theta": 10000.0, "rope_type": "default", "partial_rotary_factor": 0.5},
            resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0, tie_word_embeddings=False, **common_dec)),
        "stablelm": (T.StableLmForCausalLM, T.StableLmConfig(  # partial rotary, GQA, q/k/v bias, LayerNorm
            hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, use_qkv_bias=True,
            rope_parameters={"rope_theta": 10000.0, "rope_type": "default", "partial_rotary_factor": 0.5},
            tie_word_embeddings=False, **common_dec)),
        "gemma": (T.GemmaForCausalLM, T.GemmaConfig(  # (1 + w) RMSNorm, sqrt(D) embeddings, MQA, head_dim != D / H
            hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=1, head_dim=16, max_position_embeddings=128, rms_norm_eps=1e-6,
            tie_word_embeddings=True, **common_dec)),
        "granite": (T.GraniteForCausalLM, T.GraniteConfig(  # embedding/residual/attention multipliers, logit divisor
            hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5, embedding_multiplier=3.0,
            residual_multiplier=0.5, attention_multiplier=0.125, logits_scaling=4.0,
            tie_word_embeddings=True, **common_dec)),
        "olmo": (T.OlmoForCausalLM, T.OlmoConfig(  # non-parametric LayerNorms
            hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=False, **common_dec)),
        "olmo2": (T.Olmo2ForCausalLM, T.Olmo2Config(  # x + norm(f(x)), RMSNorm over the whole q and k projections
            hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-6,
            tie_word_embeddings=False, **common_dec)),
        "gptj": (T.GPTJForCausalLM, T.GPTJConfig(  # one shared LayerNorm, interleaved partial RoPE, LM-head bias
            n_embd=32, n_head=4, n_layer=2, n_positions=128, rotary_dim=4, n_inner=48, resid_pdrop=0.0,
            embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=False, **common_dec)),
        "cohere": (T.CohereForCausalLM, T.CohereConfig(  # one bias-free LayerNorm feeds both, interleaved RoPE, logit_scale
            hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, logit_scale=0.25,
            tie_word_embeddings=True, **common_dec)),
        "falcon": (T.FalconForCausalLM, T.FalconConfig(  # new decoder architecture: GQA, two parallel norms
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_kv_heads=2,
            new_decoder_architecture=True, ffn_hidden_size=48, max_position_embeddings=128,
            hidden_dropout=0.0, attention_dropout=0.0, tie_word_embeddings=False, **common_dec)),
        "nemotron": (T.NemotronForCausalLM, T.NemotronConfig(  # LayerNorm1P (1 + w), relu2 MLP, partial rotary
            hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, norm_eps=1e-5,
            rope_parameters={"rope_theta": 10000.0, "rope_type": "default", "partial_rotary_factor": 0.5},
            tie_word_embeddings=False, **common_dec)),
        "mixtral": (T.MixtralForCausalLM, T.MixtralConfig(  # 4 experts, top 2, a window
            hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5, sliding_window=5,
            num_local_experts=4, num_experts_per_tok=2, tie_word_embeddings=False, **common_dec)),
        "olmoe": (T.OlmoeForCausalLM, T.OlmoeConfig(  # whole-projection QK-norm, 5 experts top 2, unnormalised
            hidden_size=32, intermediate_size=24, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5, num_experts=5,
            num_experts_per_tok=2, norm_topk_prob=False, tie_word_embeddings=False, **common_dec)),
        "qwen2_moe": (T.Qwen2MoeForCausalLM, T.Qwen2MoeConfig(  # gated shared expert, unnormalised top 2, dense layer 1
            hidden_size=32, intermediate_size=64, moe_intermediate_size=24, shared_expert_intermediate_size=40,
            num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
            rms_norm_eps=1e-5, num_experts=4, num_experts_per_tok=2, norm_topk_prob=False, mlp_only_layers=[1],
            tie_word_embeddings=False, **common_dec)),
        "qwen3_moe": (T.Qwen3MoeForCausalLM, T.Qwen3MoeConfig(  # per-head q/k norm, top 3 of 5 renormalised, layer 0 dense, tied
            hidden_size=32, intermediate_size=64, moe_intermediate_size=24, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=128,
            rms_norm_eps=1e-5, num_experts=5, num_experts_per_tok=3, norm_topk_prob=True, decoder_sparse_step=2,
            tie_word_embeddings=True, **common_dec)),
        "starcoder2": (T.Starcoder2ForCausalLM, T.Starcoder2Config(  # LayerNorm, GQA, biases, window, tied
            hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, sliding_window=5, use_bias=True,
            tie_word_embeddings=True, **common_dec)),
        "gpt_bigcode": (T.GPTBigCodeForCausalLM, T.GPTBigCodeConfig(  # MQA: c_attn rows [q 32; k 8; v 8]
            n_positions=64, n_embd=32, n_layer=2, n_head=4, multi_query=True, n_inner=48,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **common_dec)),
        "mpt": (T.MptForCausalLM, T.MptConfig(  # ALiBi (6 heads: not a power of two), bias-free LayerNorm
            d_model=48, n_heads=6, n_layers=2, max_seq_len=64, expansion_ratio=4, no_bias=True,
            attn_config={"attn_pdrop": 0}, **common_dec)),
        "gpt_neo": (T.GPTNeoForCausalLM, T.GPTNeoConfig(  # unscaled scores, local layer 1 with a 5-token window
            hidden_size=32, num_layers=2, num_heads=4, intermediate_size=48, max_position_embeddings=64,
            attention_types=[[["global", "local"], 1]], window_size=5, embed_dropout=0.0,
            resid_dropout=0.0, attention_dropout=0.0, **common_dec)),
        # q/k LayerNorm, relu2, partial rotary, fused per head; a narrow MLP keeps relu2's squares (and the
        # embedding gradient) small enough that float32 rounding stays far below 1e-4
        "persimmon": (T.PersimmonForCausalLM, T.PersimmonConfig(
            hidden_size=32, intermediate_size=16, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=64, qk_layernorm=True, hidden_dropout=0.0, attention_dropout=0.0,
            rope_parameters={"rope_theta": 10000.0, "rope_type": "default", "partial_rotary_factor": 0.5},
            tie_word_embeddings=False, **common_dec)),
        "arcee": (T.ArceeForCausalLM, T.ArceeConfig(  # RMSNorm + ungated relu2 MLP, GQA, head_dim != D / H, biases
            hidden_size=32, intermediate_size=16, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, max_position_embeddings=64, attention_bias=True,
            mlp_bias=True, tie_word_embeddings=False, **common_dec)),
        "phi3": (T.Phi3ForCausalLM, T.Phi3Config(  # fused qkv / gate_up, partial rotary, LongRoPE, window
            hidden_size=64, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, original_max_position_embeddings=8,
            rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0, "partial_rotary_factor": 0.5,
                             "short_factor": [1.0, 1.3, 1.9, 2.6], "long_factor": [1.2, 2.5, 4.5, 8.0]},
            sliding_window=5, tie_word_embeddings=False, **common_dec)),
        "bloom": (T.BloomForCausalLM, T.BloomConfig(  # ALiBi (6 heads: not a power of two), embedding LayerNorm
            hidden_size=48, n_layer=2, n_head=6, hidden_dropout=0.0, attention_dropout=0.0,
            tie_word_embeddings=True, **common_dec)),
        "opt": (T.OPTForCausalLM, T.OPTConfig(  # learned positions offset by 2, ReLU MLP
            hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=64,
            word_embed_proj_dim=32, dropout=0.0, attention_dropout=0.0, tie_word_embeddings=True,
            vocab_size=VOCAB, bos_token_id=2, eos_token_id=2, pad_token_id=1)),
        "smollm3": (T.SmolLM3ForCausalLM, T.SmolLM3Config(  # no RoPE on layer 1 and 3; a window on layer 2
            hidden_size=32, intermediate_size=48, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5, no_rope_layer_interval=2,
            use_sliding_window=True, sliding_window=5,
            layer_types=["full_attention", "full_attention", "sliding_attention", "full_attention"],
            tie_word_embeddings=True, **common_dec)),
        "gemma2": (T.Gemma2ForCausalLM, T.Gemma2Config(  # sandwich (1 + w) norms, softcaps, local/global layers
            hidden_size=32, intermediate_size=48, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
            head_dim=16, query_pre_attn_scalar=24, sliding_window=5, attn_logit_softcapping=3.0,
            final_logit_softcapping=5.0, max_position_embeddings=128, tie_word_embeddings=True, **common_dec)),
        "gemma3_text": (T.Gemma3ForCausalLM, T.Gemma3TextConfig(  # per-head (1 + w) QK-norm, RoPE per layer type
            hidden_size=32, intermediate_size=48, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
            head_dim=16, query_pre_attn_scalar=256, sliding_window=5, max_position_embeddings=128,
            layer_types=["sliding_attention", "sliding_attention", "full_attention", "sliding_attention"],
            rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 100.0},
                             "full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0}},
            tie_word_embeddings=True, **common_dec)),
        "bert": (T.BertForMaskedLM, T.BertConfig(
            vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=64, pad_token_id=0,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)),
        "distilbert": (T.DistilBertForMaskedLM, T.DistilBertConfig(  # no token types, fixed eps, tied projector
            vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=64,
            pad_token_id=0, dropout=0.0, attention_dropout=0.0)),
        "nomic_bert": (T.NomicBertForMaskedLM, T.NomicBertConfig(  # post-norm RoPE encoder, SwiGLU, token types
            vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
            max_position_embeddings=64, pad_token_id=0, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)),
        "roberta": (T.RobertaForMaskedLM, T.RobertaConfig(  # positions offset by pad_token_id + 1
            vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=66, pad_token_id=1, bos_token_id=0, eos_token_id=2,
            type_vocab_size=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)),
        "modernbert": (T.ModernBertForMaskedLM, T.ModernBertConfig(
            vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=4,
            num_attention_heads=4, local_attention=6, max_position_embeddings=128,
            pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2)),
    }


def _registered() -> tuple[str, ...]:
    from blueprint.families import model_types

    return tuple(model_types())


REQUIRED = ("gpt2", "llama", "mistral", "bert", "modernbert")  # the families issue 5 names
FAMILIES = _registered()  # every family: import-hf, weights, parity, export-hf
EXTRA = tuple(f for f in FAMILIES if f not in REQUIRED)  # built (ONNX) tests for these run with -m slow
# the row's class says which: encoders are tested as masked-LM classes, decoders as causal LMs
ENCODERS = tuple(f for f, (cls, _) in _configs().items() if cls.__name__.endswith("ForMaskedLM"))
DECODERS = tuple(f for f in FAMILIES if f not in ENCODERS)


def built(families):
    """Parameters for tests that need a real `blueprint build` (an ONNX export, seconds each):
    the extra families run with ``-m slow``, the required ones in the default suite."""
    import pytest

    return [pytest.param(f, marks=pytest.mark.slow) if f in EXTRA else f for f in families]


def _scale_offset(model: torch.nn.Module, name: str) -> float:
    """What a norm weight adds to its scale's base: 1 for a norm that multiplies by its weight,
    0 for one that multiplies by (1 + weight) (Gemma), told apart by running the norm module with
    a zero weight: a plain norm then outputs zeros."""
    module = model.get_submodule(name.rsplit(".", 1)[0])
    weight = module.weight
    saved = weight.detach().clone()
    weight.zero_()
    probe = torch.randn(2, weight.shape[0], generator=torch.Generator().manual_seed(0))
    try:
        silent = bool((module(probe) == 0).all())
    finally:
        weight.copy_(saved)
    return 1.0 if silent else 0.0


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Weights ~ N(0, 0.15); norm weights such that each norm scales by about 1 (+- 0.1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if p.dim() == 1 and "norm" in name.lower() and name.endswith("weight"):
                p.copy_(_scale_offset(model, name) + 0.1 * noise)
            else:
                p.copy_(0.15 * noise)


def make_reference(family: str, folder: Path, seed: int = 0, attn: str = "eager"):
    """Build, randomise and save the reference model; return it in eval mode."""
    rows = _configs()
    assert family in rows, f"model_type {family!r} is registered in blueprint/families but has no row in tests/hf/hf_models.py"
    cls, config = rows[family]
    config._attn_implementation = attn
    torch.manual_seed(seed)
    model = cls(config)
    randomize(model, seed)
    model.tie_weights()
    model.eval()
    model.save_pretrained(folder)
    return model
