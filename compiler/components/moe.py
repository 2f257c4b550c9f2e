"""Mixture of experts: a router picks ``top_k`` of ``num_experts`` FFN experts per token.

Shapes: T tokens (b * s flattened), D embed_dim, E num_experts, k top_k, H expert hidden_dim.

Routing is the one transformers' Mixtral, Qwen2-MoE, Qwen3-MoE and OLMoE blocks use: logits =
router(x) [T, E]; softmax over all experts in at least float32 (``compute_dtype``: float64 in the
build's float64 reference); ``torch.topk`` keeps k; ``normalize_top_k`` rescales the kept
probabilities to sum 1. Calling ``torch.topk`` on the same probabilities is what makes the choice
identical to transformers', exact ties included (torch's CPU tie order is its own, not "lower
index first"). The ONNX export's ``TopK`` breaks exact ties by the lower expert index (the ONNX
rule), so on a token whose k-th and (k+1)-th probabilities are bitwise equal, onnxruntime may
choose another expert than torch; ties below the k-th place change nothing. docs/moe.md.

Two ways to compute the same sum ``out[t] = sum_j w[t, j] * expert_{i[t, j]}(x[t])``:

- active-only (torch, training and eager inference): tokens are grouped by expert and each
  expert runs on its own tokens only: k / E of the dense FLOPs. Group sizes depend on the data,
  so this path cannot be traced to a static graph;
- dense (while ``torch.export`` traces, i.e. the ONNX export): every expert runs on every token
  and the routing weights, zero for unchosen experts, weight the sum. Static shapes, E / k times
  the active FLOPs; docs/moe.md measures it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from compiler.components.ffn import ACTIVATIONS
from compiler.components.precision import compute_dtype


class StackedLinear(nn.Module):
    """E linear maps of one shape stored as one weight [E, out, in] (bias [E, out]): what the
    dense path multiplies in one batched matmul and the active path indexes per expert."""

    def __init__(self, num_experts: int, in_dim: int, out_dim: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_experts, out_dim, in_dim))
        self.bias = nn.Parameter(torch.zeros(num_experts, out_dim)) if bias else None
        bound = 1 / math.sqrt(in_dim)  # nn.Linear's default range; init_weights replaces it
        nn.init.uniform_(self.weight, -bound, bound)

    def one(self, x: torch.Tensor, e: int) -> torch.Tensor:
        """x [n, in] through expert e -> [n, out]."""
        return F.linear(x, self.weight[e], None if self.bias is None else self.bias[e])

    def every(self, x: torch.Tensor) -> torch.Tensor:
        """x [T, in] (or [E, T, in]) through every expert -> [E, T, out]."""
        y = torch.matmul(x, self.weight.transpose(1, 2))  # [E, T, out]
        return y if self.bias is None else y + self.bias[:, None, :]


class Experts(nn.Module):
    """E experts of one FFN shape: up -> act -> down (``gated=False``) or
    down(act(gate(x)) * up(x)) (SwiGLU/GeGLU)."""

    def __init__(self, num_experts: int, embed_dim: int, hidden_dim: int, activation: str,
                 gated: bool, bias: bool):
        super().__init__()
        self.act = ACTIVATIONS[activation]
        self.gate_proj = StackedLinear(num_experts, embed_dim, hidden_dim, bias) if gated else None
        self.up_proj = StackedLinear(num_experts, embed_dim, hidden_dim, bias)
        self.down_proj = StackedLinear(num_experts, hidden_dim, embed_dim, bias)

    def one(self, x: torch.Tensor, e: int) -> torch.Tensor:
        """x [n, D] through expert e -> [n, D]."""
        h = self.up_proj.one(x, e)
        h = self.act(h) if self.gate_proj is None else self.act(self.gate_proj.one(x, e)) * h
        return self.down_proj.one(h, e)

    def every(self, x: torch.Tensor) -> torch.Tensor:
        """x [T, D] through every expert -> [E, T, D]."""
        h = self.up_proj.every(x)  # [E, T, H]
        h = self.act(h) if self.gate_proj is None else self.act(self.gate_proj.every(x)) * h
        return self.down_proj.every(h)  # [E, T, D]


class Router(nn.Module):
    """Softmax over all experts, then the top k (renormalised when ``normalize_top_k``)."""

    def __init__(self, embed_dim: int, num_experts: int, top_k: int, normalize_top_k: bool, bias: bool):
        super().__init__()
        self.proj = nn.Linear(embed_dim, num_experts, bias=bias)
        self.top_k, self.normalize_top_k = top_k, normalize_top_k

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [T, D] -> (weights [T, k] in compute dtype, expert indices [T, k] int64)."""
        logits = self.proj(x)  # [T, E]
        probs = torch.softmax(logits.to(compute_dtype(x.dtype)), dim=-1)  # [T, E]
        weights, chosen = torch.topk(probs, self.top_k, dim=-1)  # [T, k] each
        if self.normalize_top_k:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        return weights, chosen


class MoE(nn.Module):
    """Routed experts plus an optional shared expert (optionally sigmoid-gated per token)."""

    def __init__(self, router: Router, experts: Experts, shared_expert: nn.Module | None = None,
                 shared_expert_gate: nn.Module | None = None):
        super().__init__()
        self.router = router
        self.experts = experts
        self.shared_expert = shared_expert
        self.shared_expert_gate = shared_expert_gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [b, s, D] -> [b, s, D]."""
        b, s, d = x.shape
        tokens = x.reshape(b * s, d)  # [T, D]
        weights, chosen = self.router(tokens)  # [T, k], [T, k]
        if torch.compiler.is_exporting():
            out = self._dense(tokens, weights, chosen)
        else:
            out = self._active(tokens, weights, chosen)
        if self.shared_expert is not None:
            shared = self.shared_expert(tokens)  # [T, D]
            if self.shared_expert_gate is not None:
                shared = torch.sigmoid(self.shared_expert_gate(tokens)) * shared  # [T, 1] * [T, D]
            out = out + shared
        return out.reshape(b, s, d)

    def _active(self, tokens: torch.Tensor, weights: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        """Each expert on the tokens that chose it; contributions added in expert order."""
        k = chosen.shape[1]
        flat = chosen.reshape(-1)  # [T * k], entry t * k + j is token t's j-th choice
        order = torch.argsort(flat, stable=True)  # slots grouped by expert, token order inside
        counts = torch.bincount(flat, minlength=self.router.proj.out_features).tolist()
        flat_weights = weights.reshape(-1, 1)  # [T * k, 1]
        out = torch.zeros_like(tokens)
        for e, slots in enumerate(torch.split(order, counts)):
            if slots.numel() == 0:
                continue
            rows = slots // k  # the tokens that chose expert e, each once
            y = self.experts.one(tokens[rows], e) * flat_weights[slots]  # [n, D] in compute dtype
            out.index_add_(0, rows, y.to(out.dtype))
        return out

    def _dense(self, tokens: torch.Tensor, weights: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        """Every expert on every token, weighted by the routing (zero where not chosen)."""
        num_experts = self.router.proj.out_features
        dense = torch.zeros(tokens.shape[0], num_experts, dtype=weights.dtype, device=tokens.device)
        dense = dense.scatter(1, chosen, weights)  # [T, E]
        every = self.experts.every(tokens)  # [E, T, D]
        out = (every.to(weights.dtype) * dense.t().unsqueeze(-1)).sum(dim=0)  # [T, D]
        return out.to(tokens.dtype)
