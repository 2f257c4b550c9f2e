"""Mixture of experts: a router picks ``top_k`` of ``num_experts`` FFN experts per token.

Shapes: T tokens (b * s flattened), D embed_dim, E num_experts, k top_k, H expert hidden_dim.

Routing is the one transformers' Mixtral, Qwen2-MoE, Qwen3-MoE and OLMoE blocks use: logits =
router(x) [T, E]; softmax over all experts in at least float32 (``compute_dtype``: float64 in the
build's float64 reference); ``torch.topk`` keeps k; ``normalize_top_k`` rescales the kept
probabilities to sum 1. Calling ``torch.topk`` on the same probabilities is what makes the choice
identical to transformers', exact ties included (torch's CPU tie order is its own, not "lower
index first"). The ONNX export's ``TopK`` breaks exact ties by the lower expert index (the ONNX
rule), so on a token whose k-th and (k+1)-th probabilities are bitwise equal, onnxruntime may
choose another expert than torch; ties that do not straddle the k-th place change nothing
(docs/moe.md).

Two ways to compute the same sum ``out[t] = sum_j w[t, j] * expert_{i[t, j]}(x[t])``:

- active-only (torch, training and eager inference): tokens are grouped by expert and each
  expert runs on its own tokens only: k / E of the dense FLOPs. Group sizes depend on the data,
  so this path cannot be traced to a static graph;
- dense (while ``torch.export`` traces, i.e. the ONNX export): every expert runs on every token
  and the routing weights, zero for unchosen experts, weight the sum. Static shapes, E / k times
  the active FLOPs; docs/moe.md measures it.

Each expert is its own dense FFN module (``experts.{e}.{gate,up,down}_proj``), the layout
published checkpoints store (Mixtral's ``experts.{e}.w1``, Qwen-MoE's and OLMoE's
``experts.{e}.gate_proj``), so weights map name to name.
"""

from __future__ import annotations

import torch
from torch import nn

from compiler.components.precision import compute_dtype


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

    def __init__(self, router: Router, experts: list[nn.Module], shared_expert: nn.Module | None = None,
                 shared_expert_gate: nn.Module | None = None):
        super().__init__()
        self.router = router
        self.experts = nn.ModuleList(experts)  # each a dense FFN (compiler.components.ffn)
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
        counts = torch.bincount(flat, minlength=len(self.experts)).tolist()
        flat_weights = weights.reshape(-1, 1)  # [T * k, 1]
        out = torch.zeros_like(tokens)
        for e, slots in enumerate(torch.split(order, counts)):
            # an expert no token chose still runs (on zero rows): its parameters then get a zero
            # gradient rather than none, which DDP's gradient reduction needs
            rows = slots // k  # the tokens that chose expert e, each once
            y = self.experts[e](tokens[rows]) * flat_weights[slots]  # [n, D] in compute dtype
            out.index_add_(0, rows, y.to(out.dtype))
        return out

    def _dense(self, tokens: torch.Tensor, weights: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        """Every expert on every token, weighted by the routing (zero where not chosen)."""
        dense = torch.zeros(tokens.shape[0], len(self.experts), dtype=weights.dtype, device=tokens.device)
        dense = dense.scatter(1, chosen, weights)  # [T, E]
        out = torch.zeros_like(tokens, dtype=weights.dtype)  # [T, D]
        for e, expert in enumerate(self.experts):
            out = out + expert(tokens).to(weights.dtype) * dense[:, e:e + 1]
        return out.to(tokens.dtype)
