"""Feed-forward sublayers: a plain MLP (up -> act -> down) and gated linear units
(down(act(gate(x)) * up(x)): SwiGLU with SiLU, GeGLU with GELU)."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

# Exact GELU is the erf form; gelu_tanh is GPT-2's tanh approximation. They differ by ~1e-3,
# so the spec's choice is honoured exactly.
ACTIVATIONS = {
    "gelu": partial(F.gelu, approximate="none"),
    "gelu_tanh": partial(F.gelu, approximate="tanh"),
    "relu": F.relu,
    "relu2": lambda x: F.relu(x).square(),  # Primer / Nemotron
    "silu": F.silu,
}


class MLP(nn.Module):
    def __init__(self, embed_dim: int, hidden_dim: int, activation: str, bias: bool):
        super().__init__()
        self.act = ACTIVATIONS[activation]
        self.up_proj = nn.Linear(embed_dim, hidden_dim, bias=bias)
        self.down_proj = nn.Linear(hidden_dim, embed_dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act(self.up_proj(x)))


class GLU(nn.Module):
    """Shazeer (2020): the activated gate multiplies the linear up projection."""

    def __init__(self, embed_dim: int, hidden_dim: int, activation: str, bias: bool):
        super().__init__()
        self.act = ACTIVATIONS[activation]
        self.gate_proj = nn.Linear(embed_dim, hidden_dim, bias=bias)
        self.up_proj = nn.Linear(embed_dim, hidden_dim, bias=bias)
        self.down_proj = nn.Linear(hidden_dim, embed_dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))
