"""Lowering: ModelSpec -> nn.Module tree of components.

Each spec choice with a ``kind`` is built through a ``{kind: builder}`` table, so a new
variant is a schema entry, a component, a table row and a test. Nothing here is read at run
time: the module tree carries every decision.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from blueprint.spec.schema import BlockSpec, ModelSpec
from compiler import signature
from compiler.components.attention import AnalysisAttention, Attention
from compiler.components.block import Block
from compiler.components.embeddings import Embeddings
from compiler.components.ffn import GLU, MLP
from compiler.components.moe import MoE, Router
from compiler.components.heads import ClassificationHead, CausalLMHead, EmbeddingsHead, MaskedLMHead
from compiler.components.norms import build_norm
from compiler.components.positional import Alibi, LearnedPositions, Rope, SinusoidalPositions
from compiler.components.transformer import Transformer

# Absolute position modules added in the embeddings (None: nothing added there).
EMBED_POSITIONS: dict[str, Callable[[ModelSpec], nn.Module | None]] = {
    "learned": lambda spec: LearnedPositions(spec.max_seq_len, spec.embed_dim, spec.positional.offset),
    "sinusoidal": lambda spec: SinusoidalPositions(spec.embed_dim, spec.positional.base),
    "rope": lambda spec: None,
    "alibi": lambda spec: None,
    "none": lambda spec: None,
}


def _rope(spec: ModelSpec, block: BlockSpec) -> dict:
    a, pos = block.attention, spec.positional
    if not a.rope:  # a no-RoPE layer (SmolLM3, Llama 4)
        return {}
    base = a.rope_base if a.rope_base is not None else pos.rope_base
    scaling = a.rope_scaling if a.rope_scaling is not None else pos.scaling
    return {"rope": Rope(a.head_dim, pos.rotary_fraction, base, pos.layout, scaling)}


# Relative position modules handed to attention, as keyword arguments.
ATTENTION_POSITIONS: dict[str, Callable[[ModelSpec, BlockSpec], dict]] = {
    "rope": _rope,
    "alibi": lambda spec, block: {"alibi": Alibi(block.attention.num_heads)},
    "learned": lambda spec, block: {},
    "sinusoidal": lambda spec, block: {},
    "none": lambda spec, block: {},
}

# A feed-forward spec -> its module; the activation each kind applies (swiglu: SiLU).
FFN_ACTIVATION: dict[str, Callable[[object], str]] = {
    "mlp": lambda f: f.activation, "swiglu": lambda f: "silu", "geglu": lambda f: f.activation}


def build_ffn(embed_dim: int, f) -> nn.Module:
    """One dense FFN (also a mixture's shared expert)."""
    cls = MLP if f.kind == "mlp" else GLU
    return cls(embed_dim, f.hidden_dim, FFN_ACTIVATION[f.kind](f), f.bias)


def build_moe(embed_dim: int, f) -> MoE:
    experts = [build_ffn(embed_dim, f.expert) for _ in range(f.num_experts)]
    router = Router(embed_dim, f.num_experts, f.top_k, f.router.normalize_top_k, f.router.bias)
    shared = build_ffn(embed_dim, f.shared_expert) if f.shared_expert is not None else None
    gate = nn.Linear(embed_dim, 1, bias=False) if f.shared_expert_gate == "sigmoid" else None
    return MoE(router, experts, shared, gate)


FFNS: dict[str, Callable[[ModelSpec, BlockSpec], nn.Module]] = {
    "mlp": lambda spec, b: build_ffn(spec.embed_dim, b.ffn),
    "swiglu": lambda spec, b: build_ffn(spec.embed_dim, b.ffn),
    "geglu": lambda spec, b: build_ffn(spec.embed_dim, b.ffn),
    "moe": lambda spec, b: build_moe(spec.embed_dim, b.ffn),
}

HEADS: dict[str, Callable[[ModelSpec], nn.Module]] = {
    "causal_lm": lambda spec: CausalLMHead(spec.embed_dim, spec.vocab_size, spec.head.bias,
                                           logit_scale=spec.head.logit_scale, softcap=spec.head.softcap),
    "masked_lm": lambda spec: MaskedLMHead(
        spec.embed_dim, spec.vocab_size, activation=spec.head.activation,
        dense_bias=spec.head.dense_bias, decoder_bias=spec.head.decoder_bias,
        norm=build_norm(spec.norm, spec.embed_dim)),
    "embeddings": lambda spec: EmbeddingsHead(
        spec.embed_dim, spec.head.pooling, spec.head.pooler, spec.head.normalize),
    "classification": lambda spec: ClassificationHead(
        spec.embed_dim, spec.head.num_labels, spec.head.pooling, spec.head.pooler),
}

# Which head parameter is the vocabulary projection that ``tie_embeddings`` shares.
TIED_HEAD_MODULE = {"causal_lm": "proj", "masked_lm": "decoder"}


# The attention computation: "sdpa" is the fused kernel every build exports (layers with a softcap
# write their softmax out either way); "analysis" writes every softmax out so
# ``compiler.inspect`` can read per-head probabilities (same parameters).
ATTENTIONS: dict[str, type[Attention]] = {"sdpa": Attention, "analysis": AnalysisAttention}


def _qk_norms(spec: ModelSpec, a) -> dict:
    """QK-norm modules over each head (hd features) or the whole projection (H*hd, KV*hd)."""
    if not a.qk_norm:
        return {}
    per_head = a.qk_norm_scope == "head"
    q_dim, k_dim = (a.head_dim, a.head_dim) if per_head else (a.num_heads * a.head_dim, a.kv_heads * a.head_dim)
    return {"q_norm": build_norm(spec.norm, q_dim), "k_norm": build_norm(spec.norm, k_dim),
            "qk_norm_scope": a.qk_norm_scope}


def _dot_product(spec: ModelSpec, block: BlockSpec, cls: type[Attention]) -> Attention:
    a = block.attention
    return cls(
        spec.embed_dim, a.num_heads, a.kv_heads, a.head_dim, causal=a.causal, window=a.window,
        qkv_bias=a.qkv_bias, out_bias=a.out_bias, softmax_scale=a.softmax_scale, softcap=a.softcap,
        dropout=spec.dropout.attention, **_qk_norms(spec, a),
        **ATTENTION_POSITIONS[spec.positional.kind](spec, block))


# One row per attention variant (the spec's ``attention.kind``, ``blueprint.spec.schema.
# AttentionVariant``): (spec, layer block, computation class from ``ATTENTIONS``) -> module.
ATTENTION_KINDS: dict[str, Callable[[ModelSpec, BlockSpec, type[Attention]], nn.Module]] = {
    "dot_product": _dot_product,
}


def build_attention(spec: ModelSpec, block: BlockSpec, attention: str = "sdpa") -> Attention:
    return ATTENTION_KINDS[block.attention.kind](spec, block, ATTENTIONS[attention])


def build_block(spec: ModelSpec, block: BlockSpec, attention: str = "sdpa") -> Block:
    def norm(present: bool) -> nn.Module | None:  # a fresh norm per use
        return build_norm(spec.norm, spec.embed_dim) if present else None

    return Block(
        build_attention(spec, block, attention), FFNS[block.ffn.kind](spec, block),
        attn_norm=norm(block.has_attn_norm), ffn_norm=norm(block.has_ffn_norm),
        attn_out_norm=norm(block.has_out_norms), ffn_out_norm=norm(block.has_out_norms),
        norm_placement=block.norm_placement, residual=block.residual,
        residual_multiplier=block.residual_multiplier, dropout=spec.dropout.residual)


def build_embeddings(spec: ModelSpec) -> Embeddings:
    return Embeddings(
        spec.vocab_size, spec.embed_dim, positions=EMBED_POSITIONS[spec.positional.kind](spec),
        type_vocab_size=spec.type_vocab_size,
        norm=build_norm(spec.norm, spec.embed_dim) if spec.embed_norm else None,
        dropout=spec.dropout.embed, multiplier=spec.embed_multiplier)


def lower(spec: ModelSpec, *, kv_cache: bool = False, attention: str = "sdpa") -> Transformer:
    """The eager module tree for ``spec`` (parameters left at their constructors' values;
    ``compiler.init.init_weights`` applies the spec's initialisation). ``attention`` picks the
    row of ``ATTENTIONS`` every layer uses."""
    signature.check_kv_cache(spec, kv_cache)
    if attention not in ATTENTIONS:
        from blueprint.errors import BlueprintError

        raise BlueprintError(f"unknown attention variant {attention!r}",
                             hint=f"choose one of {', '.join(ATTENTIONS)}")
    embed = build_embeddings(spec)
    head = HEADS[spec.head.kind](spec)
    tied = TIED_HEAD_MODULE.get(spec.head.kind)
    if spec.tie_embeddings and tied is not None:
        # One Parameter under two names; state_dict lists both, safetensors saving keeps
        # embed.tokens.weight only (compiler.naming).
        getattr(head, tied).weight = embed.tokens.weight
    return Transformer(
        embed, [build_block(spec, b, attention) for b in spec.resolved_layers()],
        build_norm(spec.norm, spec.embed_dim) if spec.final_norm else None, head,
        input_names=signature.input_names(spec, kv_cache),
        output_names=signature.output_names(spec, kv_cache), kv_cache=kv_cache)
