"""config.json -> spec mappings for encoder families: BERT and ModernBERT.

The head is chosen from the checkpoint's architecture (``...ForMaskedLM`` -> masked_lm,
``...ForSequenceClassification`` -> classification, a bare model -> embeddings) unless the
caller passes one (a sentence-transformers folder says mean pooling + normalisation).
"""

from __future__ import annotations

from typing import Any

from blueprint.errors import BlueprintError
from blueprint.hf.decoders import activation, token_ids
from blueprint.hf.fields import ConfigReader


def _architecture(r: ConfigReader) -> str:
    archs = r.get("architectures", [])
    return archs[0] if archs else ""


def _num_labels(r: ConfigReader) -> int:
    id2label = r.get("id2label")
    return len(id2label) if id2label else int(r.get("num_labels", 2))


def bert(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    r.expect("position_embedding_type", ("absolute",), "relative position variants are not modelled")
    r.expect("is_decoder", (False,), "BERT as a decoder is not modelled")
    r.expect("add_cross_attention", (False,), "cross-attention is not modelled")
    r.get("classifier_dropout")  # dropout before a classifier: inactive at inference
    act = activation(r, "hidden_act", "gelu")
    arch = _architecture(r)
    if head is None:
        if arch.endswith("ForMaskedLM") or arch.endswith("ForPreTraining"):
            head = {"kind": "masked_lm", "activation": act}
        elif arch.endswith("ForSequenceClassification"):
            head = {"kind": "classification", "num_labels": _num_labels(r), "pooling": "cls", "pooler": "dense_tanh"}
        else:
            head = {"kind": "embeddings", "pooling": "cls", "pooler": "dense_tanh"}
    return {
        "vocab_size": r.require("vocab_size"),
        "max_seq_len": r.require("max_position_embeddings"),
        "embed_dim": r.require("hidden_size"),
        "num_layers": r.require("num_hidden_layers"),
        "type_vocab_size": r.get("type_vocab_size", 2),
        "tie_embeddings": bool(r.get("tie_word_embeddings", True)) and head["kind"] == "masked_lm",
        "dropout": {
            "embed": r.get("hidden_dropout_prob", 0.1),
            "attention": r.get("attention_probs_dropout_prob", 0.1),
            "residual": r.get("hidden_dropout_prob", 0.1),
        },
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "learned"},
        "norm": {"kind": "layernorm", "norm_eps": r.get("layer_norm_eps", 1e-12)},
        "embed_norm": True,
        "final_norm": False,
        "block": {
            "norm_placement": "post",
            "attention": {"num_heads": r.heads("hidden_size", "num_attention_heads"), "causal": False, "qkv_bias": True, "out_bias": True},
            "ffn": {"kind": "mlp", "activation": act, "hidden_dim": r.require("intermediate_size"), "bias": True},
        },
        "head": head,
        "_tokenizer": token_ids(r),
    }


def _modernbert_layers(r: ConfigReader, layers: int) -> list[bool]:
    """True for global layers. transformers 5 writes layer_types; older configs write
    global_attn_every_n_layers (layer i is global when i % n == 0)."""
    types = r.get("layer_types")
    every = r.get("global_attn_every_n_layers")
    if types is None:
        n = every or 3
        return [i % n == 0 for i in range(layers)]
    if len(types) != layers or set(types) - {"full_attention", "sliding_attention"}:
        raise BlueprintError(f"config.json: layer_types {types} does not describe {layers} layers")
    return [t == "full_attention" for t in types]


def _modernbert_rope(r: ConfigReader) -> tuple[float, float]:
    """(global base, local base) from rope_parameters (5.x) or global/local_rope_theta (4.x)."""
    params = r.get("rope_parameters")
    if params:
        bases = {}
        for kind in ("full_attention", "sliding_attention"):
            p = params.get(kind, {})
            if p.get("rope_type", "default") != "default" or set(p) - {"rope_type", "rope_theta"}:
                raise BlueprintError(f"config.json: rope_parameters.{kind} = {p} is not supported")
            bases[kind] = float(p.get("rope_theta", 160000.0 if kind == "full_attention" else 10000.0))
        return bases["full_attention"], bases["sliding_attention"]
    return float(r.get("global_rope_theta", 160000.0)), float(r.get("local_rope_theta", 10000.0))


def modernbert(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    layers = r.require("num_hidden_layers")
    heads = r.heads("hidden_size", "num_attention_heads")
    glob = _modernbert_layers(r, layers)
    global_base, local_base = _modernbert_rope(r)
    window = int(r.get("local_attention", 128))
    attn_bias = bool(r.get("attention_bias", False))
    norm_bias = bool(r.get("norm_bias", False))
    # Training-time and kernel switches that do not change the function computed.
    for key in ("initializer_cutoff_factor", "deterministic_flash_attn", "sparse_prediction",
                "sparse_pred_ignore_index", "reference_compile", "repad_logits_with_grad",
                "classifier_dropout", "global_attn_every_n_layers"):
        r.get(key)
    # ModernBERT drops out inside the MLP (before Wo); blueprint's residual dropout sits after
    # the sublayer. Equal at inference, different in training, so only 0 is accepted.
    r.expect("mlp_dropout", (0.0, 0), "set mlp_dropout to 0 or train with blueprint's residual dropout")
    arch = _architecture(r)
    head_act = activation(r, "classifier_activation", "gelu")
    classifier_bias = bool(r.get("classifier_bias", False))
    decoder_bias = bool(r.get("decoder_bias", True))
    r.get("classifier_pooling")
    if head is None:
        if arch.endswith("ForMaskedLM"):
            head = {"kind": "masked_lm", "activation": head_act, "dense_bias": classifier_bias,
                    "decoder_bias": decoder_bias}
        elif arch and not arch.endswith("Model"):
            raise BlueprintError(f"config.json: architecture {arch} has a head blueprint does not model",
                                 hint="import the base ModernBertModel or the ForMaskedLM checkpoint")
        else:
            head = {"kind": "embeddings", "pooling": "mean"}
    # The default block is a local layer; each global layer gets an override.
    overrides: list[dict[str, Any]] = []
    for i, g in enumerate(glob):
        if g:
            overrides.append({"index": i, "set": {"attention": {"window": None, "rope_base": global_base}}})
    overrides.append({"index": 0, "set": {"attn_norm": False}})
    return {
        "vocab_size": r.require("vocab_size"),
        "max_seq_len": r.require("max_position_embeddings"),
        "embed_dim": r.require("hidden_size"),
        "num_layers": layers,
        "tie_embeddings": bool(r.get("tie_word_embeddings", True)) and head["kind"] == "masked_lm",
        "dropout": {
            "embed": r.get("embedding_dropout", 0.0),
            "attention": r.get("attention_dropout", 0.0),
            "residual": 0.0,
        },
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "rope", "rope_base": local_base},
        "norm": {"kind": "layernorm", "norm_eps": r.get("norm_eps", 1e-5), "bias": norm_bias},
        "embed_norm": True,
        "final_norm": True,
        "block": {
            "norm_placement": "pre",
            "attention": {"num_heads": heads, "causal": False, "qkv_bias": attn_bias, "out_bias": attn_bias,
                          "window": window, "rope_base": local_base},
            "ffn": {"kind": "geglu", "activation": activation(r, "hidden_activation", "gelu"),
                    "hidden_dim": r.require("intermediate_size"), "bias": bool(r.get("mlp_bias", False))},
        },
        "layers": overrides,
        "head": head,
        "_tokenizer": token_ids(r),
    }
