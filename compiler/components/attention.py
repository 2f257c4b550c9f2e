"""Self-attention: MHA, GQA and MQA through grouped key/value heads.

Shape glossary: b batch, s new (query) positions, t = past + s key positions, D embed_dim,
H num_heads, KV num_kv_heads (H % KV == 0; KV == H is MHA, 1 is MQA), hd head_dim.

K and V are projected to KV heads only (GQA stores and caches KV heads, never repeated
weights); ``F.scaled_dot_product_attention(..., enable_gqa=True)`` shares each KV head among
H / KV query heads. That call exports to a single ONNX ``Attention`` op at opset 23.

Mask semantics (docs/architecture.md, Contracts 9): query i (cache index past + i) sees key j
when the key is a real token (attention_mask == 1) and, causal, p - W < q <= p / bidirectional,
|p - q| <= W // 2 (window W; None is global). Every query also sees its own position, so no row is ever fully
masked: a padding query's output is then finite and identical in torch and onnxruntime, and
real queries never see padding keys, so padding cannot change real outputs. The mask is
additive, filled with finfo(dtype).min, never -inf.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from compiler.components.precision import compute_dtype


def allowed_keys(attention_mask: torch.Tensor, s: int, causal: bool, window: int | None) -> torch.Tensor:
    """Which keys each query may see: bool [b, 1, s, t], plus the distance |q - k| [s, t].

    attention_mask: int [b, t] over all key positions (past and new); queries are the last s.
    """
    t = attention_mask.shape[1]
    q_pos = torch.arange(s, device=attention_mask.device) + (t - s)  # [s]
    k_pos = torch.arange(t, device=attention_mask.device)  # [t]
    diff = q_pos[:, None] - k_pos[None, :]  # [s, t]: how far back the key is
    if causal:
        ok = diff >= 0
        if window is not None:
            ok = ok & (diff < window)
    else:
        ok = torch.ones_like(diff, dtype=torch.bool)
        if window is not None:
            ok = diff.abs() <= window // 2
    real = attention_mask[:, None, None, :].bool()  # [b, 1, 1, t]
    allowed = (real & ok[None, None]) | (diff == 0)[None, None]  # [b, 1, s, t]
    return allowed, diff.abs()


class Attention(nn.Module):
    """One layer's self-attention: project, (QK-norm), (RoPE), attend, project back.

    Args:
        q_norm, k_norm: QK-norm modules, or None; over each head's hd features
            (``qk_norm_scope="head"``) or over the whole projection, H*hd and KV*hd features
            (``"projection"``, OLMo 2), applied before the heads are split.
        rope: a ``Rope`` applied to q and k, or None.
        alibi: an ``Alibi`` adding per-head distance biases, or None.
        softmax_scale: multiplies QK^T; None means 1/sqrt(hd).
        softcap: scores become softcap * tanh(scores / softcap) before the mask (Gemma 2), or None.
        explicit: write the softmax out (``attend_explicit``) even without a softcap; the
            fused kernel cannot cap scores, so a softcap always takes the explicit path.
    """

    def __init__(self, embed_dim: int, num_heads: int, num_kv_heads: int, head_dim: int, *,
                 causal: bool, window: int | None, qkv_bias: bool, out_bias: bool,
                 softmax_scale: float | None, dropout: float, q_norm: nn.Module | None = None,
                 k_norm: nn.Module | None = None, rope: nn.Module | None = None,
                 alibi: nn.Module | None = None, qk_norm_scope: str = "head",
                 softcap: float | None = None, explicit: bool = False):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        self.causal, self.window, self.dropout = causal, window, dropout
        self.softmax_scale = softmax_scale if softmax_scale is not None else head_dim ** -0.5
        self.q_proj = nn.Linear(embed_dim, num_heads * head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(embed_dim, num_kv_heads * head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(embed_dim, num_kv_heads * head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(num_heads * head_dim, embed_dim, bias=out_bias)
        self.q_norm, self.k_norm = q_norm, k_norm
        self.norm_heads = q_norm is not None and qk_norm_scope == "head"
        self.norm_projection = q_norm is not None and qk_norm_scope == "projection"
        self.rope, self.alibi = rope, alibi
        self.softcap = softcap
        self.explicit = explicit or softcap is not None  # the fused kernel cannot cap scores
        self.probs = AttentionProbs() if self.explicit else None

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor,
                position_ids: torch.Tensor | None = None, past_key: torch.Tensor | None = None,
                past_value: torch.Tensor | None = None):
        """x: [b, s, D] -> [b, s, D], plus the full (past + new) K and V when a past is given."""
        b, s, _ = x.shape
        h, kv, hd = self.num_heads, self.num_kv_heads, self.head_dim
        q, k = self.q_proj(x), self.k_proj(x)  # [b, s, H*hd], [b, s, KV*hd]
        if self.norm_projection:
            q, k = self.q_norm(q), self.k_norm(k)
        # QK-norm and RoPE act per position in [b, s, n, hd] layout; transposing afterwards
        # keeps SDPA's output in that layout, so merging the heads below is a view, not a copy.
        q = q.view(b, s, h, hd)  # [b, s, H, hd]
        k = k.view(b, s, kv, hd)  # [b, s, KV, hd]
        v = self.v_proj(x).view(b, s, kv, hd).transpose(1, 2)  # [b, KV, s, hd]
        if self.norm_heads:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.rope is not None:
            if position_ids is None:  # encoders: positions are 0..s-1
                position_ids = torch.arange(s, device=x.device)[None].expand(b, s)  # [b, s]
            q, k = self.rope(q, k, position_ids)
        q, k = q.transpose(1, 2), k.transpose(1, 2)  # [b, H, s, hd], [b, KV, s, hd]
        if past_key is not None:
            k = torch.cat((past_key, k), dim=2)  # [b, KV, t, hd]
            v = torch.cat((past_value, v), dim=2)  # [b, KV, t, hd]
        allowed, distance = allowed_keys(attention_mask, s, self.causal, self.window)
        bias = torch.zeros((), dtype=q.dtype, device=q.device)
        if self.alibi is not None:
            bias = self.alibi(distance, q.dtype).to(q.dtype)  # [1, H, s, t]
        mask = torch.where(allowed, bias, torch.finfo(q.dtype).min)  # [b, 1 or H, s, t]
        out = self.attend(q, k, v, mask)  # [b, H, s, hd]
        out = self.o_proj(out.transpose(1, 2).reshape(b, s, h * hd))  # [b, s, D]
        if past_key is not None:
            return out, k, v
        return out

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """q: [b, H, s, hd], k and v: [b, KV, t, hd], mask: additive [b, 1 or H, s, t] -> [b, H, s, hd]."""
        if self.explicit:
            return self.attend_explicit(q, k, v, mask)
        return self.attend_fused(q, k, v, mask)

    def attend_fused(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """softmax(q k^T * scale + mask) v through one fused kernel (one ONNX ``Attention`` op).

        q: [b, H, s, hd], k and v: [b, KV, t, hd], mask: additive [b, 1 or H, s, t] -> [b, H, s, hd].
        """
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
            scale=self.softmax_scale, enable_gqa=self.num_heads != self.num_kv_heads)

    def attend_explicit(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The same attention with the scores and softmax written out: the (soft-capped) scores,
        and the probabilities as ``self.probs``'s output, exist as tensors [b, H, s, t].

        The softcap acts on the scaled scores before the mask, as Gemma 2 does; the softmax runs
        in ``compute_dtype`` like the fused kernel's accumulation.
        """
        groups = self.num_heads // self.num_kv_heads
        if groups > 1:  # query head i reads KV head i // groups, as enable_gqa does
            k = k.repeat_interleave(groups, dim=1)  # [b, H, t, hd]
            v = v.repeat_interleave(groups, dim=1)  # [b, H, t, hd]
        scores = q @ k.transpose(-1, -2) * self.softmax_scale  # [b, H, s, t]
        if self.softcap is not None:
            scores = torch.tanh(scores / self.softcap) * self.softcap
        scores = scores + mask  # [b, H, s, t]
        probs = self.probs(scores.to(compute_dtype(q.dtype)).softmax(dim=-1).to(q.dtype))  # [b, H, s, t]
        if self.training and self.dropout > 0:
            probs = F.dropout(probs, p=self.dropout)
        return probs @ v  # [b, H, s, hd]


class AttentionProbs(nn.Module):
    """Identity on the attention probabilities [b, H, s, t]: a named point where forward hooks
    (``compiler.inspect.capture``) read them, so the analysis variant keeps no state of its own."""

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        return probs


class AnalysisAttention(Attention):
    """The same attention with the softmax written out (``attend_explicit``), so the per-head
    probabilities exist as a tensor (``self.probs``'s output) instead of staying inside the
    fused kernel.

    Everything else (projections, QK-norm, RoPE, ALiBi, soft-capping, windows, the KV cache, the
    mask) is ``Attention``'s own code. Chosen by ``compile_spec(spec, attention="analysis")``
    (``compiler.lower.ATTENTIONS``); it has the same parameters, so a state dict moves between
    the two unchanged. For inspection, not for export: the explicit [b, H, s, t] scores cost
    memory the fused kernel avoids.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs, explicit=True)
