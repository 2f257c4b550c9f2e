"""Blueprint's canonical parameter names and shapes, derived from the spec alone.

This table is the contract between the components (their ``state_dict`` must have exactly
these names and shapes), the weights code (HF name maps target these names) and the cost
model (parameter counts are sums over it). It imports no torch.

Names (``i`` is the layer index)::

    embed.tokens.weight            [vocab_size, embed_dim]
    embed.positions.weight         [max_seq_len + offset, embed_dim]   positional: learned
    embed.token_types.weight       [type_vocab_size, embed_dim]    type_vocab_size > 0
    embed.norm.{weight,bias}       [embed_dim]                     embed_norm
    layers.i.attn_norm.*           [embed_dim]   pre/sandwich: before attention; post: after the add;
                                                 parallel_shared_norm: the one norm; not post_sublayer
    layers.i.attn.{q,k,v,o}_proj.{weight,bias}                     q: [H*hd, D], k/v: [KV*hd, D], o: [D, H*hd]
    layers.i.attn.{q,k}_norm.*     [head_dim]                      qk_norm (scope head)
                                   [H*hd], [KV*hd]                 qk_norm (scope projection)
    layers.i.attn_out_norm.*       [embed_dim]                     sandwich, post_sublayer: on the attention output
    layers.i.ffn_norm.*            [embed_dim]                     not parallel_shared_norm, not post_sublayer
    layers.i.ffn.{gate,up,down}_proj.{weight,bias}                 gate only for GLU kinds
    layers.i.ffn.router.proj.{weight,bias}   [E, D]                ffn: moe (E num_experts)
    layers.i.ffn.experts.e.{gate,up,down}_proj.{weight,bias}       expert e (0 <= e < E), as a dense FFN
    layers.i.ffn.shared_expert.{gate,up,down}_proj.*               moe shared_expert
    layers.i.ffn.shared_expert_gate.weight   [1, D]                shared_expert_gate: sigmoid
    layers.i.ffn_out_norm.*        [embed_dim]                     sandwich, post_sublayer
    final_norm.*                   [embed_dim]                     final_norm
    head.proj.{weight,bias}        causal LM (weight only when untied)
    head.dense.*, head.norm.*, head.decoder.{weight,bias}          masked LM (weight only when untied)
    head.pooler.{weight,bias}      [D, D]                          pooler: dense_tanh
    head.classifier.{weight,bias}  [num_labels, D]                 classification

A tied weight appears once, under ``embed.tokens.weight``. Norm ``.bias`` exists only for a
LayerNorm with ``bias: true``, norm ``.weight`` not for a LayerNorm with ``weight: false``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from blueprint.spec.schema import BlockSpec, ModelSpec

Shapes = dict[str, tuple[int, ...]]


def _norm(shapes: Shapes, prefix: str, dim: int, spec: "ModelSpec") -> None:
    if getattr(spec.norm, "weight", True):
        shapes[f"{prefix}.weight"] = (dim,)
    if spec.norm.kind == "layernorm" and spec.norm.bias:
        shapes[f"{prefix}.bias"] = (dim,)


def _linear(shapes: Shapes, prefix: str, out_dim: int, in_dim: int, bias: bool) -> None:
    shapes[f"{prefix}.weight"] = (out_dim, in_dim)
    if bias:
        shapes[f"{prefix}.bias"] = (out_dim,)


def _ffn(shapes: Shapes, p: str, f, d: int) -> None:
    hidden = f.hidden_dim
    assert hidden is not None
    if f.kind != "mlp":
        _linear(shapes, f"{p}.gate_proj", hidden, d, f.bias)
    _linear(shapes, f"{p}.up_proj", hidden, d, f.bias)
    _linear(shapes, f"{p}.down_proj", d, hidden, f.bias)


def _moe(shapes: Shapes, p: str, f, d: int) -> None:
    _linear(shapes, f"{p}.router.proj", f.num_experts, d, f.router.bias)
    for e in range(f.num_experts):
        _ffn(shapes, f"{p}.experts.{e}", f.expert, d)
    if f.shared_expert is not None:
        _ffn(shapes, f"{p}.shared_expert", f.shared_expert, d)
    if f.shared_expert_gate == "sigmoid":
        shapes[f"{p}.shared_expert_gate.weight"] = (1, d)


def _block(shapes: Shapes, p: str, block: "BlockSpec", spec: "ModelSpec") -> None:
    d, a, f = spec.embed_dim, block.attention, block.ffn
    hd, h, kv = a.head_dim, a.num_heads, a.kv_heads
    assert hd is not None
    if block.has_attn_norm:
        _norm(shapes, f"{p}.attn_norm", d, spec)
    _linear(shapes, f"{p}.attn.q_proj", h * hd, d, a.qkv_bias)
    _linear(shapes, f"{p}.attn.k_proj", kv * hd, d, a.qkv_bias)
    _linear(shapes, f"{p}.attn.v_proj", kv * hd, d, a.qkv_bias)
    _linear(shapes, f"{p}.attn.o_proj", d, h * hd, a.out_bias)
    if a.qk_norm:
        per_head = a.qk_norm_scope == "head"
        _norm(shapes, f"{p}.attn.q_norm", hd if per_head else h * hd, spec)
        _norm(shapes, f"{p}.attn.k_norm", hd if per_head else kv * hd, spec)
    if block.has_out_norms:
        _norm(shapes, f"{p}.attn_out_norm", d, spec)
    if block.has_ffn_norm:
        _norm(shapes, f"{p}.ffn_norm", d, spec)
    if f.kind == "moe":
        _moe(shapes, f"{p}.ffn", f, d)
    else:
        _ffn(shapes, f"{p}.ffn", f, d)
    if block.has_out_norms:
        _norm(shapes, f"{p}.ffn_out_norm", d, spec)


def _head(shapes: Shapes, spec: "ModelSpec") -> None:
    d, v, head = spec.embed_dim, spec.vocab_size, spec.head
    if head.kind == "causal_lm":
        if not spec.tie_embeddings:
            shapes["head.proj.weight"] = (v, d)
        if head.bias:
            shapes["head.proj.bias"] = (v,)
    elif head.kind == "masked_lm":
        _linear(shapes, "head.dense", d, d, head.dense_bias)
        _norm(shapes, "head.norm", d, spec)
        if not spec.tie_embeddings:
            shapes["head.decoder.weight"] = (v, d)
        if head.decoder_bias:
            shapes["head.decoder.bias"] = (v,)
    else:
        if head.pooler == "dense_tanh":
            _linear(shapes, "head.pooler", d, d, True)
        if head.kind == "classification":
            _linear(shapes, "head.classifier", head.num_labels, d, True)


def parameter_shapes(spec: "ModelSpec") -> Shapes:
    """Every trainable tensor of the compiled model, by canonical name, in module order."""
    d = spec.embed_dim
    shapes: Shapes = {"embed.tokens.weight": (spec.vocab_size, d)}
    if spec.positional.kind == "learned":
        shapes["embed.positions.weight"] = (spec.max_seq_len + spec.positional.offset, d)
    if spec.type_vocab_size:
        shapes["embed.token_types.weight"] = (spec.type_vocab_size, d)
    if spec.embed_norm:
        _norm(shapes, "embed.norm", d, spec)
    for i, block in enumerate(spec.resolved_layers()):
        _block(shapes, f"layers.{i}", block, spec)
    if spec.final_norm:
        _norm(shapes, "final_norm", d, spec)
    _head(shapes, spec)
    return shapes


def parameter_count(spec: "ModelSpec") -> int:
    total = 0
    for shape in parameter_shapes(spec).values():
        n = 1
        for s in shape:
            n *= s
        total += n
    return total
