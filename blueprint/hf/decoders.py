"""config.json -> spec mappings for decoder families: GPT-2, LLaMA/Mistral/Qwen2/Qwen3, GPT-NeoX, Phi.

Each function reads fields through a ``ConfigReader`` (so unknown fields are caught) and returns
the spec as a plain mapping; validation happens once, in ``blueprint.hf.config_to_spec``.
"""

from __future__ import annotations

from typing import Any

from blueprint.errors import BlueprintError
from blueprint.hf.fields import ConfigReader

# transformers activation names -> the spec's activation names (exact equivalents only).
ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
}


def activation(r: ConfigReader, key: str, default: str) -> str:
    name = r.get(key, default)
    if name not in ACTIVATIONS:
        raise BlueprintError(
            f"config.json: '{key}' = {name!r} is not supported "
            f"(supported: {', '.join(sorted(ACTIVATIONS))})"
        )
    return ACTIVATIONS[name]


def rope(r: ConfigReader, default_base: float = 10000.0) -> tuple[float, float]:
    """(rope_base, rotary_fraction) from rope_parameters (transformers 5) or rope_theta (4.x).

    Any rope scaling (linear, dynamic, yarn, llama3, ...) is refused: the spec cannot express it.
    """
    scaling = r.get("rope_scaling")
    params = r.get("rope_parameters", {}) or {}
    rope_type = params.get("rope_type", params.get("type", "default"))
    if scaling or rope_type != "default":
        raise BlueprintError(
            f"config.json: rope scaling ({scaling or rope_type!r}) is not supported",
            hint="blueprint models plain RoPE only; remove the model's context extension first",
        )
    unknown = set(params) - {"rope_theta", "rope_type", "type", "partial_rotary_factor"}
    if unknown:
        raise BlueprintError(f"config.json: rope_parameters field(s) {sorted(unknown)} are not understood")
    base = params.get("rope_theta", r.first("rope_theta", "rotary_emb_base", default=default_base))
    fraction = params.get("partial_rotary_factor", r.first("partial_rotary_factor", "rotary_pct", default=1.0))
    return float(base), float(fraction)


def rotary_fraction(fraction: float, head_dim: int, key: str = "partial_rotary_factor") -> float:
    """``fraction`` if it rotates an even, whole number of features per head, else an error.

    transformers rotates ``int(head_dim * fraction)`` features (rounding down) and needs an even
    count; the spec's rope rounds to nearest. They agree exactly when the product is a whole
    even number, the only case imported."""
    exact = head_dim * fraction
    dims = int(exact)
    if dims != round(exact) or dims % 2 or dims == 0 or abs(exact - round(exact)) > 1e-9:
        raise BlueprintError(
            f"config.json: '{key}' = {fraction} rotates {exact:g} of each head's {head_dim} features; "
            "blueprint imports only an even whole number",
        )
    return fraction


def token_ids(r: ConfigReader) -> dict[str, Any]:
    """bos/eos/pad ids for the spec's tokenizer section. A list of eos ids (Llama 3, chat
    models) keeps every id: generation stops on any of them. A negative id is transformers'
    "no such token". Ids outside the vocabulary are dropped later, with a note
    (``blueprint.hf.config_to_spec``)."""
    out: dict[str, Any] = {}
    for key, field in (("bos_token_id", "bos_id"), ("eos_token_id", "eos_id"), ("pad_token_id", "pad_id")):
        value = r.get(key)
        values = value if isinstance(value, list) else [value]
        kept = list(dict.fromkeys(int(v) for v in values if v is not None and v >= 0))  # in order, once
        if kept:
            out[field] = kept if isinstance(value, list) and field == "eos_id" and len(kept) > 1 else kept[0]
    return out


def _sizes(r: ConfigReader, embed_dim: int) -> dict[str, Any]:
    """The size fields LLaMA-, NeoX- and Phi-style configs spell alike."""
    return {
        "vocab_size": r.require("vocab_size"),
        "max_seq_len": r.require("max_position_embeddings"),
        "embed_dim": embed_dim,
        "num_layers": r.require("num_hidden_layers"),
        "tie_embeddings": bool(r.get("tie_word_embeddings", False)),
    }


def gpt2(r: ConfigReader) -> dict[str, Any]:
    r.expect("scale_attn_weights", (True,), "GPT-2 without 1/sqrt(head_dim) scaling is not modelled")
    r.expect("scale_attn_by_inverse_layer_idx", (False,), "per-layer attention scaling is not modelled")
    r.expect("add_cross_attention", (False,), "cross-attention is not modelled")
    d = r.require("n_embd")
    n_positions = r.require("n_positions")
    n_ctx = r.get("n_ctx", n_positions)
    if n_ctx != n_positions:
        raise BlueprintError(f"config.json: n_ctx ({n_ctx}) differs from n_positions ({n_positions})")
    # fp16 upcasting switch: changes nothing in float32
    r.get("reorder_and_upcast_attn")
    return {
        "vocab_size": r.require("vocab_size"),
        "max_seq_len": n_positions,
        "embed_dim": d,
        "num_layers": r.require("n_layer"),
        "tie_embeddings": bool(r.get("tie_word_embeddings", True)),
        "dropout": {
            "embed": r.get("embd_pdrop", 0.0),
            "attention": r.get("attn_pdrop", 0.0),
            "residual": r.get("resid_pdrop", 0.0),
        },
        "init": {"std": r.get("initializer_range", 0.02), "scaled_residual": True},
        "positional": {"kind": "learned"},
        "norm": {"kind": "layernorm", "norm_eps": r.get("layer_norm_epsilon", 1e-5)},
        "final_norm": True,
        "block": {
            "norm_placement": "pre",
            "attention": {"num_heads": r.heads("n_embd", "n_head"), "causal": True, "qkv_bias": True, "out_bias": True},
            "ffn": {
                "kind": "mlp",
                "activation": activation(r, "activation_function", "gelu_new"),
                "hidden_dim": r.get("n_inner", 4 * d),
                "bias": True,
            },
        },
        "head": {"kind": "causal_lm"},
        "_tokenizer": token_ids(r),
    }


def llama(r: ConfigReader) -> dict[str, Any]:
    """LLaMA, Mistral (sliding window), Qwen2 (q/k/v bias), Qwen3 (q/k RMSNorm per head)."""
    family = r.family
    r.expect("hidden_act", ("silu",), "the SwiGLU FFN uses SiLU")
    d = r.require("hidden_size")
    heads = r.require("num_attention_heads")
    layers = r.require("num_hidden_layers")
    base, fraction = rope(r)
    if fraction != 1.0:
        raise BlueprintError(f"config.json: partial rotary ({fraction}) is not used by {family}")
    attn_bias = bool(r.get("attention_bias", False))
    attention: dict[str, Any] = {
        "num_heads": heads,
        "num_kv_heads": r.get("num_key_value_heads", heads),
        "head_dim": r.get("head_dim", d // heads),
        "causal": True,
        "qkv_bias": attn_bias or family == "qwen2",
        "out_bias": attn_bias,
        "qk_norm": family == "qwen3",
    }
    overrides: list[dict[str, Any]] = []
    window = _sliding_window(r, layers)
    if isinstance(window, int):
        attention["window"] = window
    elif window is not None:  # per-layer list: layers with a window get an override
        for i, w in enumerate(window):
            if w is not None:
                overrides.append({"index": i, "set": {"attention": {"window": w}}})
    return {
        **_sizes(r, d),
        "dropout": {"attention": r.get("attention_dropout", 0.0)},
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "rope", "rope_base": base},
        "norm": {"kind": "rmsnorm", "norm_eps": r.get("rms_norm_eps", 1e-6)},
        "final_norm": True,
        "block": {
            "norm_placement": "pre",
            "attention": attention,
            "ffn": {"kind": "swiglu", "hidden_dim": r.require("intermediate_size"), "bias": bool(r.get("mlp_bias", False))},
        },
        "layers": overrides,
        "head": {"kind": "causal_lm"},
        "_tokenizer": token_ids(r),
    }


def _sliding_window(r: ConfigReader, layers: int) -> int | list[int | None] | None:
    """Mistral: ``sliding_window`` on every layer. Qwen: only with ``use_sliding_window`` and per
    ``layer_types`` (or ``max_window_layers``)."""
    window = r.get("sliding_window")
    use = r.get("use_sliding_window", r.family not in ("qwen2", "qwen3"))
    r.get("max_window_layers")
    types = r.get("layer_types")
    if not use or window is None:
        if types and any(t != "full_attention" for t in types):
            raise BlueprintError("config.json: layer_types has sliding layers but no sliding window is enabled")
        return None
    if types is None:
        if r.family in ("qwen2", "qwen3"):
            start = r.get("max_window_layers", layers)
            return [window if i >= start else None for i in range(layers)]
        return int(window)
    if len(types) != layers:
        raise BlueprintError(f"config.json: layer_types has {len(types)} entries, num_hidden_layers is {layers}")
    bad = sorted({t for t in types} - {"full_attention", "sliding_attention"})
    if bad:
        raise BlueprintError(f"config.json: layer_types value(s) {bad} are not supported")
    if all(t == "sliding_attention" for t in types):
        return int(window)
    return [int(window) if t == "sliding_attention" else None for t in types]


def _parallel_rope(r: ConfigReader, d: int, *, residual: str, attention: dict[str, Any],
                   dropout: dict[str, Any], activation_default: str, head: dict[str, Any]) -> dict[str, Any]:
    """The skeleton GPT-NeoX and Phi share: LayerNorm, (partial) RoPE, a biased GELU MLP."""
    base, fraction = rope(r)
    rotary_fraction(fraction, attention["head_dim"])
    return {
        **_sizes(r, d),
        "dropout": dropout,
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "rope", "rope_base": base, "rotary_fraction": fraction},
        "norm": {"kind": "layernorm", "norm_eps": r.get("layer_norm_eps", 1e-5)},
        "final_norm": True,
        "block": {
            "norm_placement": "pre",
            "residual": residual,
            "attention": {**attention, "causal": True, "qkv_bias": True, "out_bias": True},
            "ffn": {"kind": "mlp", "activation": activation(r, "hidden_act", activation_default),
                    "hidden_dim": r.require("intermediate_size"), "bias": True},
        },
        "head": head,
        "_tokenizer": token_ids(r),
    }


def gpt_neox(r: ConfigReader) -> dict[str, Any]:
    """GPT-NeoX / Pythia: parallel residual (two norms), partial rotary, biases everywhere."""
    d = r.require("hidden_size")
    heads = r.heads("hidden_size", "num_attention_heads")
    r.expect("attention_bias", (True,), "GPT-NeoX without attention bias is not modelled")
    return _parallel_rope(
        r, d, residual="parallel" if r.get("use_parallel_residual", True) else "sequential",
        attention={"num_heads": heads, "head_dim": d // heads},
        dropout={"attention": r.get("attention_dropout", 0.0), "residual": r.get("hidden_dropout", 0.0)},
        activation_default="gelu", head={"kind": "causal_lm"})


def phi(r: ConfigReader) -> dict[str, Any]:
    """Phi-1/1.5/2: parallel residual from ONE input LayerNorm, partial rotary, biases
    everywhere, an LM head with bias, optional per-head q/k LayerNorm.

    The spec's parallel block has two norms (attn_norm, ffn_norm); the weights loader fills both
    with Phi's one ``input_layernorm``, which computes the same function."""
    d = r.require("hidden_size")
    heads = r.require("num_attention_heads")
    head_dim = r.get("head_dim", d // heads)
    qk_norm = bool(r.get("qk_layernorm", False))
    if qk_norm and head_dim != d // heads:
        raise BlueprintError(f"config.json: qk_layernorm with head_dim {head_dim} != hidden_size / "
                             f"num_attention_heads ({d // heads}) is not modelled (Phi sizes those norms by the latter)")
    return _parallel_rope(
        r, d, residual="parallel",
        attention={"num_heads": heads, "num_kv_heads": r.get("num_key_value_heads", heads),
                   "head_dim": head_dim, "qk_norm": qk_norm},
        dropout={"embed": r.get("embd_pdrop", 0.0), "attention": r.get("attention_dropout", 0.0),
                 "residual": r.get("resid_pdrop", 0.0)},
        activation_default="gelu_new", head={"kind": "causal_lm", "bias": True})
