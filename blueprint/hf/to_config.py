"""Spec -> Hugging Face ``config.json`` for the families transformers can load back.

The family is recognised from the spec's structure. The result is checked by mapping it back
with ``config_to_spec`` and comparing every architectural field (per layer): if the round trip
does not reproduce the spec, the spec uses something that family's config cannot say, and the
export is refused naming the first field that differs. Imports no torch.
"""

from __future__ import annotations

from typing import Any

from blueprint.errors import BlueprintError
from blueprint.hf import config_to_spec
from blueprint.spec.schema import ModelSpec

_TO_HF_ACT = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu", "silu": "silu"}


def detect_family(spec: ModelSpec) -> str:
    """The transformers model_type whose layout the spec has, or an error saying why none fits."""
    b = spec.block
    a = b.attention
    if spec.is_decoder:
        if spec.positional.kind == "learned" and spec.norm.kind == "layernorm" and b.ffn.kind == "mlp":
            return "gpt2"
        if spec.positional.kind == "rope" and spec.norm.kind == "layernorm" and b.ffn.kind == "mlp":
            return "phi" if spec.head.kind == "causal_lm" and spec.head.bias else "gpt_neox"
        if spec.positional.kind == "rope" and spec.norm.kind == "rmsnorm" and b.ffn.kind == "swiglu":
            if a.qk_norm:
                return "qwen3"
            if a.qkv_bias and not a.out_bias:
                return "qwen2"
            return "mistral" if any(l.attention.window for l in spec.resolved_layers()) else "llama"
    else:
        if spec.positional.kind == "learned" and b.norm_placement == "post":
            return "bert"
        if spec.positional.kind == "rope" and b.ffn.kind == "geglu":
            return "modernbert"
    raise BlueprintError(
        f"spec '{spec.name}' does not have the layout of a supported Hugging Face family",
        hint="export-hf supports gpt2, llama, mistral, qwen2, qwen3, gpt_neox, phi, bert and modernbert layouts",
    )


def _token_ids(spec: ModelSpec) -> dict[str, Any]:
    t = spec.tokenizer
    if t is None:
        return {}
    return {"bos_token_id": t.bos_id, "eos_token_id": t.eos_id, "pad_token_id": t.pad_id}


def _gpt2(spec: ModelSpec) -> dict[str, Any]:
    a, f = spec.block.attention, spec.block.ffn
    return {
        "architectures": ["GPT2LMHeadModel"], "vocab_size": spec.vocab_size,
        "n_positions": spec.max_seq_len, "n_embd": spec.embed_dim, "n_layer": spec.num_layers,
        "n_head": a.num_heads, "n_inner": f.hidden_dim, "activation_function": _TO_HF_ACT[f.activation],
        "layer_norm_epsilon": spec.norm.norm_eps, "embd_pdrop": spec.dropout.embed,
        "attn_pdrop": spec.dropout.attention, "resid_pdrop": spec.dropout.residual,
        "initializer_range": spec.init.std, "tie_word_embeddings": spec.tie_embeddings,
        "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
    }


def _llama(spec: ModelSpec, family: str) -> dict[str, Any]:
    a, f = spec.block.attention, spec.block.ffn
    arch = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
            "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}[family]
    config: dict[str, Any] = {
        "architectures": [arch], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "intermediate_size": f.hidden_dim, "num_hidden_layers": spec.num_layers,
        "num_attention_heads": a.num_heads, "num_key_value_heads": a.kv_heads, "head_dim": a.head_dim,
        "hidden_act": "silu", "max_position_embeddings": spec.max_seq_len,
        "rms_norm_eps": spec.norm.norm_eps, "initializer_range": spec.init.std,
        "tie_word_embeddings": spec.tie_embeddings, "attention_dropout": spec.dropout.attention,
        "rope_parameters": {"rope_theta": spec.positional.rope_base, "rope_type": "default"},
    }
    if family in ("llama", "qwen3"):
        config["attention_bias"] = a.out_bias
    if family == "llama":
        config["mlp_bias"] = f.bias
    windows = [l.attention.window for l in spec.resolved_layers()]
    if family == "mistral":
        config["sliding_window"] = windows[0]
    elif family in ("qwen2", "qwen3"):
        w = next((x for x in windows if x), None)
        config["use_sliding_window"] = w is not None
        config["sliding_window"] = w
        config["layer_types"] = ["sliding_attention" if x else "full_attention" for x in windows]
    return config


def _rope_parameters(spec: ModelSpec) -> dict[str, Any]:
    return {"rope_theta": spec.positional.rope_base, "rope_type": "default",
            "partial_rotary_factor": spec.positional.rotary_fraction}


def _gpt_neox(spec: ModelSpec) -> dict[str, Any]:
    a, f, b = spec.block.attention, spec.block.ffn, spec.block
    return {
        "architectures": ["GPTNeoXForCausalLM"], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "intermediate_size": f.hidden_dim, "num_hidden_layers": spec.num_layers,
        "num_attention_heads": a.num_heads, "hidden_act": _TO_HF_ACT[f.activation],
        "max_position_embeddings": spec.max_seq_len, "layer_norm_eps": spec.norm.norm_eps,
        "rope_parameters": _rope_parameters(spec), "use_parallel_residual": b.residual == "parallel",
        "attention_bias": True, "tie_word_embeddings": spec.tie_embeddings,
        "attention_dropout": spec.dropout.attention, "hidden_dropout": spec.dropout.residual,
        "initializer_range": spec.init.std,
    }


def _phi(spec: ModelSpec) -> dict[str, Any]:
    a, f = spec.block.attention, spec.block.ffn
    return {
        "architectures": ["PhiForCausalLM"], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "intermediate_size": f.hidden_dim, "num_hidden_layers": spec.num_layers,
        "num_attention_heads": a.num_heads, "num_key_value_heads": a.kv_heads,
        "hidden_act": _TO_HF_ACT[f.activation], "max_position_embeddings": spec.max_seq_len,
        "layer_norm_eps": spec.norm.norm_eps, "rope_parameters": _rope_parameters(spec),
        "qk_layernorm": a.qk_norm, "tie_word_embeddings": spec.tie_embeddings,
        "embd_pdrop": spec.dropout.embed, "resid_pdrop": spec.dropout.residual,
        "attention_dropout": spec.dropout.attention, "initializer_range": spec.init.std,
    }


def _bert(spec: ModelSpec) -> dict[str, Any]:
    a, f, head = spec.block.attention, spec.block.ffn, spec.head
    arch = {"masked_lm": "BertForMaskedLM", "classification": "BertForSequenceClassification"}.get(head.kind, "BertModel")
    config = {
        "architectures": [arch], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "num_hidden_layers": spec.num_layers, "num_attention_heads": a.num_heads,
        "intermediate_size": f.hidden_dim, "hidden_act": _TO_HF_ACT[f.activation],
        "max_position_embeddings": spec.max_seq_len, "type_vocab_size": spec.type_vocab_size,
        "layer_norm_eps": spec.norm.norm_eps, "hidden_dropout_prob": spec.dropout.residual,
        "attention_probs_dropout_prob": spec.dropout.attention, "initializer_range": spec.init.std,
        "position_embedding_type": "absolute", "tie_word_embeddings": spec.tie_embeddings or head.kind != "masked_lm",
    }
    if head.kind == "classification":
        config["id2label"] = {str(i): f"LABEL_{i}" for i in range(head.num_labels)}
    return config


def _modernbert(spec: ModelSpec) -> dict[str, Any]:
    layers = spec.resolved_layers()
    a, f, head = spec.block.attention, spec.block.ffn, spec.head
    local = next((l.attention for l in layers if l.attention.window), a)
    glob = next((l.attention for l in layers if not l.attention.window), a)
    base = spec.positional.rope_base
    config: dict[str, Any] = {
        "architectures": ["ModernBertForMaskedLM" if head.kind == "masked_lm" else "ModernBertModel"],
        "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "intermediate_size": f.hidden_dim, "num_hidden_layers": spec.num_layers,
        "num_attention_heads": a.num_heads, "hidden_activation": _TO_HF_ACT[f.activation],
        "max_position_embeddings": spec.max_seq_len, "norm_eps": spec.norm.norm_eps,
        "norm_bias": spec.norm.bias, "attention_bias": a.qkv_bias, "mlp_bias": f.bias,
        "local_attention": local.window or 128, "initializer_range": spec.init.std,
        "layer_types": ["sliding_attention" if l.attention.window else "full_attention" for l in layers],
        "rope_parameters": {
            "full_attention": {"rope_type": "default", "rope_theta": glob.rope_base or base},
            "sliding_attention": {"rope_type": "default", "rope_theta": local.rope_base or base},
        },
        "embedding_dropout": spec.dropout.embed, "attention_dropout": spec.dropout.attention,
        "mlp_dropout": 0.0, "tie_word_embeddings": spec.tie_embeddings or head.kind != "masked_lm",
    }
    if head.kind == "masked_lm":
        config.update(classifier_activation=_TO_HF_ACT[head.activation], classifier_bias=head.dense_bias,
                      decoder_bias=head.decoder_bias)
    return config


def spec_to_config(spec: ModelSpec) -> dict[str, Any]:
    """The config.json mapping for ``spec``, verified to import back to the same architecture.

    Raises:
        BlueprintError: no supported family has this layout, or the family's config cannot
            express some field of the spec (named).
    """
    family = detect_family(spec)
    body = {
        "gpt2": _gpt2, "gpt_neox": _gpt_neox, "phi": _phi, "bert": _bert, "modernbert": _modernbert,
    }.get(family, lambda s: _llama(s, family))(spec)
    ids = {k: v for k, v in _token_ids(spec).items() if v is not None}
    config = {"model_type": family, **body, **ids}
    head = spec.head.model_dump() if spec.head.kind == "embeddings" else None
    back = ModelSpec.model_validate(config_to_spec(config, name=spec.name, head=head))
    _same_architecture(spec, back, family)
    return config


_TOP = ("vocab_size", "max_seq_len", "embed_dim", "num_layers", "type_vocab_size", "tie_embeddings",
        "positional", "norm", "embed_norm", "final_norm", "head")


def _same_architecture(spec: ModelSpec, back: ModelSpec, family: str) -> None:
    pairs: list[tuple[str, Any, Any]] = [(k, getattr(spec, k), getattr(back, k)) for k in _TOP]
    for i, (mine, theirs) in enumerate(zip(spec.resolved_layers(), back.resolved_layers())):
        pairs.append((f"layers[{i}]", mine, theirs))
    for where, mine, theirs in pairs:
        m = mine.model_dump() if hasattr(mine, "model_dump") else mine
        t = theirs.model_dump() if hasattr(theirs, "model_dump") else theirs
        if where == "tie_embeddings" and spec.head.kind not in ("causal_lm", "masked_lm"):
            continue  # no output projection to tie
        if m != t:
            raise BlueprintError(
                f"spec '{spec.name}' cannot be written as a {family} config: {where} is {m}, "
                f"but the {family} layout gives {t}",
                hint="export-hf only writes specs that a transformers class computes exactly",
            )
