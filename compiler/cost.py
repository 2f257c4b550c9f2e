"""The cost model (team contract 6): exact parameters, FLOPs per token, KV-cache bytes and the
activation memory a training step saves for backward, per checkpoint policy. Imports no torch.

FLOPs count matrix multiplies only (2 per multiply-add): the projections, FFN and head
(2 x their weights per token) and attention's QK^T and AV (2 x 2 x H x hd per visible key),
window-aware: a token attends to the keys its mask allows, not to the padded square.

Activation bytes follow what blueprint's components actually save for backward (measured with
``torch.autograd.graph.saved_tensors_hooks`` and checked in tests/compiler to within 15%):
per layer the hidden states kept by norms and linears, norm statistics, the FFN's hidden
activations, dropout masks (stored as full-size float tensors on CPU), RoPE's cos/sin, and
attention's saved tensors, which depend on the kernel ``scaled_dot_product_attention`` picks:
the fused kernel (attention dropout 0) keeps q, k, v, the output, the log-sum-exp and the
additive mask; with attention dropout the math path keeps three [b, H, s, s] score-sized
tensors; a soft-capped layer (written-out softmax) keeps two (tanh's and softmax's outputs), four
with dropout, plus q and K, V repeated to every head. A checkpointed
layer keeps only its input; its activations are recomputed in backward.
The loss is not part of the model: a cross-entropy over the logits adds b x s x vocab x 4 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from compiler.naming import parameter_shapes

if TYPE_CHECKING:
    from blueprint.spec.schema import BlockSpec, ModelSpec

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
F32, I64 = 4, 8


@dataclass(frozen=True)
class CostReport:
    params_by_component: dict[str, int]
    params_total: int
    params_active: int  # per token: a mixture of experts counts its top_k experts only
    flops_per_token_prefill: float
    flops_per_token_decode: float
    kv_cache_bytes_per_token: int
    kv_cache_bytes_per_token_full: int
    activation_bytes: dict[str, int]


# ------------------------------------------------------------------------ parameters


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def params_by_component(spec: "ModelSpec") -> dict[str, int]:
    """Parameter counts grouped as embed, layers.0 ... layers.{L-1}, final_norm, head (a tied
    weight counts once, under embed)."""
    groups: dict[str, int] = {"embed": 0}
    groups.update({f"layers.{i}": 0 for i in range(spec.num_layers)})
    if spec.final_norm:
        groups["final_norm"] = 0
    groups["head"] = 0
    for name, shape in parameter_shapes(spec).items():
        parts = name.split(".")
        key = ".".join(parts[:2]) if parts[0] == "layers" else parts[0]
        groups[key] += _numel(shape)
    return groups


def params_active(spec: "ModelSpec") -> int:
    """Parameters one token's forward uses: all of them, except that a mixture of experts'
    token uses top_k of its num_experts experts (router and shared expert always)."""
    total = sum(params_by_component(spec).values())
    for block in spec.resolved_layers():
        f = block.ffn
        if f.kind == "moe":
            total -= (f.num_experts - f.top_k) * _ffn_params(f.expert, spec.embed_dim)
    return total


def _ffn_params(f: Any, d: int) -> int:
    """Parameters of one dense FFN (one expert): 2 or 3 [D, H] matrices and their biases."""
    mats = 2 if f.kind == "mlp" else 3
    biases = (mats - 1) * f.hidden_dim + d if f.bias else 0  # [H] per input projection, [D] for down
    return mats * d * f.hidden_dim + biases


def ffn_matmul_weights(f: Any, d: int) -> int:
    """Weights a token is multiplied by in the FFN: a dense FFN's, or a mixture's router, top_k
    experts, shared expert and its gate (what the active-only compute runs)."""
    if f.kind != "moe":
        return d * f.hidden_dim * (2 if f.kind == "mlp" else 3)
    total = d * f.num_experts + f.top_k * ffn_matmul_weights(f.expert, d)
    if f.shared_expert is not None:
        total += ffn_matmul_weights(f.shared_expert, d) + d * (f.shared_expert_gate == "sigmoid")
    return total


# ----------------------------------------------------------------------------- FLOPs


def _visible_keys(spec: "ModelSpec", block: "BlockSpec", s: int) -> float:
    """Average number of keys a query attends to over a length-s sequence."""
    a = block.attention
    if a.causal:
        w = a.window or s
        # position p sees min(p + 1, w) keys
        full = min(w, s)
        total = full * (full + 1) // 2 + (s - full) * w
        return total / s
    if a.window is None:
        return float(s)
    half = a.window // 2
    return sum(min(p + half, s - 1) - max(p - half, 0) + 1 for p in range(s)) / s


def _matmul_params(spec: "ModelSpec") -> tuple[float, float]:
    """(weights multiplied once per token, weights multiplied once per sequence)."""
    per_token = per_sequence = 0
    d = spec.embed_dim
    for block in spec.resolved_layers():
        a, f = block.attention, block.ffn
        per_token += d * a.head_dim * (2 * a.num_heads + 2 * a.kv_heads)
        per_token += ffn_matmul_weights(f, d)
    head = spec.head
    if head.kind == "causal_lm":
        per_token += d * spec.vocab_size
    elif head.kind == "masked_lm":
        per_token += d * d + d * spec.vocab_size
    else:
        per_sequence += d * d * (head.pooler == "dense_tanh")
        per_sequence += d * getattr(head, "num_labels", 0)
    return per_token, per_sequence


def _flops(spec: "ModelSpec", s: int, decode: bool) -> float:
    per_token, per_sequence = _matmul_params(spec)
    flops = 2.0 * per_token + 2.0 * per_sequence / s
    for block in spec.resolved_layers():
        a = block.attention
        if decode:  # one new token after s - 1 cached ones
            keys = float(min(a.window or s, s))
        else:
            keys = _visible_keys(spec, block, s)
        flops += 2 * 2 * a.num_heads * a.head_dim * keys
    return flops


def layer_flops_per_token(spec: "ModelSpec", block: "BlockSpec", s: int) -> float:
    """Forward FLOPs per token of one layer over a length-s sequence: what recomputing that
    layer in backward costs (its projections, FFN, and attention's QK^T and AV)."""
    a, f, d = block.attention, block.ffn, spec.embed_dim
    weights = d * a.head_dim * (2 * a.num_heads + 2 * a.kv_heads) + ffn_matmul_weights(f, d)
    return 2.0 * weights + 2 * 2 * a.num_heads * a.head_dim * _visible_keys(spec, block, s)


# -------------------------------------------------------------------------- KV cache


def _kv_bytes(spec: "ModelSpec", s: int, window_aware: bool) -> int:
    e = DTYPE_BYTES[spec.dtype]
    total = 0
    for block in spec.resolved_layers():
        a = block.attention
        kept = min(a.window, s) if (window_aware and a.window) else s
        total += 2 * a.kv_heads * a.head_dim * e * kept
    return total // s


# ----------------------------------------------------------------------- activations


def _norm_saves(spec: "ModelSpec", n: int, dim: int) -> int:
    """Bytes a norm over n rows of ``dim`` keeps besides its input and output: LayerNorm its
    mean and rstd, RMSNorm (computed in fp32) its rstd and normalised rows."""
    if spec.norm.kind == "layernorm":
        return 2 * n * F32
    return n * F32 + n * dim * F32


def _attention_saves(spec: "ModelSpec", block: "BlockSpec", b: int, s: int) -> int:
    a, e = block.attention, DTYPE_BYTES[spec.dtype]
    h, kv, hd, t = a.num_heads, a.kv_heads, a.head_dim, s
    total = 0
    if a.qk_norm:  # the norms keep q and k (projection outputs) and their statistics
        total += b * s * (h + kv) * hd * e
        if a.qk_norm_scope == "head":
            total += _norm_saves(spec, b * s * h, hd) + _norm_saves(spec, b * s * kv, hd)
        else:  # one row per position over the whole projection
            total += _norm_saves(spec, b * s, h * hd) + _norm_saves(spec, b * s, kv * hd)
    if spec.positional.kind == "rope" and a.rope:  # cos and sin, fp32 [b, 1, s, rotary_dim]
        rotary = round(a.head_dim * spec.positional.rotary_fraction)
        total += 2 * b * s * rotary * F32
    out = b * s * h * hd * e  # the attention output, kept by o_proj
    if a.softcap is not None:  # written-out softmax: tanh's and softmax's outputs (+ dropout's
        scores = b * h * s * t * e  # mask and result), q, and K, V repeated to H heads
        total += (2 + 2 * (spec.dropout.attention > 0)) * scores + b * s * h * hd * e + 2 * b * h * t * hd * e + out
    elif spec.dropout.attention > 0:  # math path
        scores = b * h * s * t * e
        total += 3 * scores + b * s * h * hd * e + 2 * b * h * t * hd * e + out
    else:  # fused kernel: q, k, v, output, log-sum-exp and the additive mask
        mask_heads = h if spec.positional.kind == "alibi" else 1
        total += b * s * h * hd * e + 2 * b * kv * t * hd * e + out
        total += b * h * s * F32 + b * mask_heads * s * t * e
    return total


def _ffn_saves(spec: "ModelSpec", block: "BlockSpec", tokens: int) -> int:
    return _dense_ffn_saves(spec, block.ffn, tokens) if block.ffn.kind != "moe" else _moe_saves(spec, block.ffn, tokens)


def _moe_saves(spec: "ModelSpec", f: Any, tokens: int) -> int:
    """The active-only path (compiler.components.moe): the router's fp32 softmax [T, E], top-k
    indices and weights (and the renormalisation's operands); per routed slot (T * k in all) the
    gathered input row, the expert's hidden activations, its output row, the weighted row
    ``index_add_`` keeps, the slot's weight and two int64 indices; the shared expert as a dense
    FFN, its output and sigmoid gate."""
    e, d, k = DTYPE_BYTES[spec.dtype], spec.embed_dim, f.top_k
    slots = tokens * k
    total = tokens * f.num_experts * F32 + tokens * k * (I64 + F32)
    if f.router.normalize_top_k:
        total += tokens * k * F32 + tokens * F32  # the quotient's numerator copy and the sums
    total += slots * (3 * d * e + F32 + 2 * I64) + _dense_ffn_saves(spec, f.expert, slots)
    if f.shared_expert is not None:
        total += _dense_ffn_saves(spec, f.shared_expert, tokens)
        if f.shared_expert_gate == "sigmoid":
            total += tokens * d * e + tokens * e  # the shared output and sigmoid's result
    return total


def _dense_ffn_saves(spec: "ModelSpec", f: Any, tokens: int) -> int:
    e = DTYPE_BYTES[spec.dtype]
    if f.kind != "mlp":  # gate, act(gate), up and their product
        return 4 * tokens * f.hidden_dim * e
    # the pre-activation and the activation; ReLU keeps its result, which is also down's input
    # (relu2: ReLU's result, kept by the square too, and the square, down's input)
    return (1 if f.activation == "relu" else 2) * tokens * f.hidden_dim * e


def _hidden_states(block: "BlockSpec") -> int:
    """How many distinct [b, s, D] hidden states a layer's norms and linears keep: sequential
    pre-norm, the layer input, both norms' outputs and the mid-layer residual; parallel has no
    mid-layer residual, and one shared norm one output fewer; no attention norm drops its
    output; sandwich adds the two sublayer outputs entering attn_out_norm and ffn_out_norm;
    post_sublayer keeps the input, both sublayer outputs and (sequential) the mid residual."""
    if block.norm_placement == "post_sublayer":
        return 3 if block.is_parallel else 4
    count = 3 if block.is_parallel else 4
    count -= block.residual == "parallel_shared_norm"
    count -= not block.attn_norm
    count += 2 * (block.norm_placement == "sandwich")
    return count


def _layer_norms(block: "BlockSpec") -> int:
    """How many [embed_dim] norms one layer applies."""
    return block.has_attn_norm + block.has_ffn_norm + 2 * block.has_out_norms


def layer_activation_bytes(spec: "ModelSpec", block: "BlockSpec", b: int, s: int) -> int:
    """Bytes one un-checkpointed layer saves for backward at batch b, sequence s."""
    e, d, tokens = DTYPE_BYTES[spec.dtype], spec.embed_dim, b * s
    total = _hidden_states(block) * tokens * d * e + _layer_norms(block) * _norm_saves(spec, tokens, d)
    total += _attention_saves(spec, block, b, s) + _ffn_saves(spec, block, tokens)
    if spec.dropout.residual > 0:
        total += 2 * tokens * d * e  # one float mask per sublayer
    return total


def _outside_layers(spec: "ModelSpec", b: int, s: int) -> int:
    """Embeddings, final norm and head."""
    e, d, tokens = DTYPE_BYTES[spec.dtype], spec.embed_dim, b * s
    total = tokens * I64  # token ids, kept by the embedding lookup
    if spec.positional.kind == "learned":
        total += tokens * I64
    if spec.type_vocab_size:
        total += tokens * I64
    if spec.embed_norm:
        total += tokens * d * e + _norm_saves(spec, tokens, d)
    if spec.dropout.embed > 0:
        total += tokens * d * e
    if spec.final_norm:
        total += tokens * d * e + _norm_saves(spec, tokens, d)
    head = spec.head
    if head.kind == "causal_lm":
        total += tokens * d * e
        if head.softcap is not None:  # tanh keeps its [b, s, vocab] result
            total += tokens * spec.vocab_size * e
    elif head.kind == "masked_lm":
        total += 4 * tokens * d * e + _norm_saves(spec, tokens, d)
    else:
        total += _pooled_head(spec, b, s)
    return total


def _pooled_head(spec: "ModelSpec", b: int, s: int) -> int:
    """Embeddings / classification heads. CLS pooling is a view of the last hidden state, so
    whatever keeps it keeps the whole [b, s, D] storage alive."""
    e, d, head = DTYPE_BYTES[spec.dtype], spec.embed_dim, spec.head
    pooled = b * d * e
    total = 0
    if head.pooling == "mean":
        total += b * s * e + b * e  # the float mask and the token counts
    elif head.pooling == "last":
        total += b * I64  # the gathered positions
    uses_pooled = head.pooler == "dense_tanh" or head.kind == "classification" or getattr(head, "normalize", False)
    if uses_pooled:
        total += b * s * d * e if head.pooling == "cls" else pooled
    if head.pooler == "dense_tanh":
        total += pooled  # tanh's result, also the next linear's input
    if getattr(head, "normalize", False):
        total += b * e  # the row norms (the vector itself is counted above)
    return total


def activation_bytes(spec: "ModelSpec", policy: Any, *, batch: int, seq_len: int) -> int:
    """Bytes saved for backward by one training forward under checkpoint ``policy``."""
    from compiler.policy import policy_from_spec

    select = policy_from_spec(policy)
    e, d, tokens = DTYPE_BYTES[spec.dtype], spec.embed_dim, batch * seq_len
    total = _outside_layers(spec, batch, seq_len)
    any_checkpointed = False
    for i, block in enumerate(spec.resolved_layers()):
        if select(i):
            any_checkpointed = True
            total += tokens * d * e  # the layer's input, kept to recompute it
        else:
            total += layer_activation_bytes(spec, block, batch, seq_len)
    if any_checkpointed:
        total += batch * seq_len * I64 * (1 + spec.is_decoder)  # the mask (and positions)
    return total


def _policies(spec: "ModelSpec", batch: int, s: int) -> dict[str, Any]:
    from compiler.policy import policy_label, resolve_policy

    policies: dict[str, Any] = {"none": "none", "every_layer": "every_layer"}
    for k in (2, 4):
        if spec.num_layers > k:
            policies[f"every:{k}"] = _EveryK(k)
    own = spec.training.checkpointing
    if getattr(own, "memory_budget", None) is not None:
        from blueprint.errors import BlueprintError

        try:  # the layers the budget picks at this batch and length (explain shows them)
            own = resolve_policy(spec, own, batch=batch, seq_len=s)
        except BlueprintError:
            return policies  # unmeetable here: ``explain`` says why
        return {**policies, "memory_budget": own}
    policies.setdefault(policy_label(own), own)
    return policies


@dataclass(frozen=True)
class _EveryK:
    every: int


def cost_report(spec: "ModelSpec", *, batch: int = 1, seq_len: int | None = None) -> CostReport:
    """Costs of ``spec`` at ``batch`` x ``seq_len`` (default: ``spec.max_seq_len``)."""
    s = seq_len or spec.max_seq_len
    groups = params_by_component(spec)
    return CostReport(
        params_by_component=groups,
        params_total=sum(groups.values()),
        params_active=params_active(spec),
        flops_per_token_prefill=_flops(spec, s, decode=False),
        flops_per_token_decode=_flops(spec, s, decode=True) if spec.is_decoder else _flops(spec, s, decode=False),
        kv_cache_bytes_per_token=_kv_bytes(spec, s, window_aware=True) if spec.is_decoder else 0,
        kv_cache_bytes_per_token_full=_kv_bytes(spec, s, window_aware=False) if spec.is_decoder else 0,
        activation_bytes={label: activation_bytes(spec, p, batch=batch, seq_len=s)
                          for label, p in _policies(spec, batch, s).items()},
    )
