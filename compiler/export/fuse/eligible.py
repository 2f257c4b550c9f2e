"""Which specs the fused export covers, and why a spec is not covered.

The fused stack (``compiler.export.fuse.emit``) is a second definition of a transformer layer,
written in onnxruntime's contrib ops; it must compute exactly what the torch components do. So
it accepts a spec only when every mechanism of every layer is one it emits, and refuses by
name anything else, including spec fields it does not know: a field added to the spec later
(soft-capping, per-projection biases, interleaved RoPE, ...) makes the build fall back to the
plain export until the emitter learns it, instead of being silently ignored.
"""

from __future__ import annotations

# Fields the emitter reads, per spec section; any other field must hold its default.
KNOWN = {
    "attention": {"num_heads", "num_kv_heads", "head_dim", "causal", "qkv_bias", "out_bias", "window",
                  "softmax_scale", "qk_norm", "rope_base"},
    "block": {"attention", "ffn", "norm_placement", "attn_norm", "residual"},
    "ffn": {"kind", "hidden_dim", "bias", "activation"},
    "norm": {"kind", "norm_eps", "bias"},
    "positional": {"kind", "rope_base", "rotary_fraction", "base"},
    # model-level fields: read by the emitter, or acting only in the embeddings and the head,
    # which the fused export still exports from the torch components (or not in the graph at all)
    "model": {"name", "vocab_size", "max_seq_len", "embed_dim", "num_layers", "type_vocab_size", "tie_embeddings",
              "dtype", "dropout", "init", "positional", "norm", "embed_norm", "embed_multiplier", "final_norm",
              "block", "layers", "head", "training", "tokenizer"},
}
FFN_KINDS = {"swiglu": "silu", "geglu": None, "mlp": None}  # None: the spec's own activation
ACTIVATIONS = {"silu", "gelu", "gelu_tanh", "relu"}
POSITIONS = {"rope", "learned", "sinusoidal", "none"}


def _unknown(section: str, model) -> list[str]:
    """Fields of ``model`` the emitter does not read that differ from their default."""
    out = []
    for name, info in type(model).model_fields.items():
        if name in KNOWN[section]:
            continue
        default = info.get_default(call_default_factory=True)
        if getattr(model, name) != default:
            out.append(f"{section}.{name}")
    return out


def why_not(spec, *, kv_cache: bool, dtype: str) -> str | None:
    """None when the fused export covers ``spec`` built with ``dtype``; otherwise the reason, in
    words for the build output (the build then uses the plain export)."""
    if not spec.is_decoder or not kv_cache:
        return "it is an encoder (the fused attention is causal with a KV cache)"
    if dtype != "fp32":
        return f"it is built in {dtype} (the fused export is measured and verified for fp32 only)"
    if spec.positional.kind not in POSITIONS:
        return f"positional.kind is {spec.positional.kind} (GroupQueryAttention has no per-head distance bias)"
    problems = _unknown("model", spec) + _unknown("positional", spec.positional) + _unknown("norm", spec.norm)
    if spec.norm.kind not in ("rmsnorm", "layernorm"):
        problems.append(f"norm.kind {spec.norm.kind}")
    for i, block in enumerate(spec.resolved_layers()):
        a, ffn = block.attention, block.ffn
        where = f"layer {i}"
        found = _unknown("block", block) + _unknown("attention", a) + _unknown("ffn", ffn)
        if block.norm_placement != "pre":
            found.append(f"norm_placement {block.norm_placement}")
        if not block.attn_norm:
            found.append("attn_norm: false")
        if block.residual != "sequential":
            found.append(f"residual {block.residual}")
        if not a.causal:
            found.append("bidirectional attention")
        if a.qk_norm:
            found.append("qk_norm")
        if ffn.kind not in FFN_KINDS:
            found.append(f"ffn.kind {ffn.kind}")
        elif (FFN_KINDS[ffn.kind] or ffn.activation) not in ACTIVATIONS:
            found.append(f"ffn activation {ffn.activation}")
        if spec.positional.kind == "rope" and rotary_dim(spec, a) % 2:
            found.append("an odd rotary dimension")
        if found:
            problems.append(f"{where}: {', '.join(found)}")
            break  # the first layer that is not covered says enough
    if problems:
        return "the fused layer does not emit " + "; ".join(problems)
    return None


def rotary_dim(spec, attention) -> int:
    """Rotated features per head, as ``compiler.components.positional.Rope`` computes them."""
    return int(round(attention.head_dim * spec.positional.rotary_fraction))


def rope_base(spec, attention) -> float:
    return attention.rope_base if attention.rope_base is not None else spec.positional.rope_base


def activation(ffn) -> str:
    return FFN_KINDS[ffn.kind] or ffn.activation


def rotary_inside(spec, attention, positions) -> bool:
    """Whether GroupQueryAttention rotates q and k itself (``do_rotary``) instead of two
    RotaryEmbedding nodes after a Split of the packed projection: its cos/sin cache width
    (rotary_dim / 2) must be a multiple of 8 (the kernel refuses others), and the graph must
    have position ids, which GQA then takes element by element (measured with ``query_seqlens``
    given, as the emitter always does; without it a prompt is rotated from its first position,
    wrong for a left-padded row)."""
    return positions is not None and rotary_dim(spec, attention) % 16 == 0
