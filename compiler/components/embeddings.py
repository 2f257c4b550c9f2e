"""Token embeddings (times ``embed_multiplier``) plus absolute positions and token types, then
the optional embedding norm and embedding dropout. Relative schemes (RoPE, ALiBi) live in
attention instead."""

from __future__ import annotations

import torch
from torch import nn


class Embeddings(nn.Module):
    """input_ids [b, s] -> [b, s, D]: tokens * multiplier (+ positions) (+ token types) -> norm
    -> dropout.

    Args:
        positions: an ``nn.Embedding`` (learned; looked up) or a module mapping position ids to
            [b, s, D] (sinusoidal), or None.
        multiplier: scales the token embeddings only (Gemma's sqrt(D), Granite's
            embedding_multiplier); a tied head reads the unscaled table.
    """

    def __init__(self, vocab_size: int, embed_dim: int, *, positions: nn.Module | None = None,
                 type_vocab_size: int = 0, norm: nn.Module | None = None, dropout: float = 0.0,
                 multiplier: float = 1.0):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, embed_dim)
        self.multiplier = multiplier
        self.positions = positions
        self.token_types = nn.Embedding(type_vocab_size, embed_dim) if type_vocab_size else None
        self.norm = norm
        self.drop = nn.Dropout(dropout)

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        x = self.tokens(input_ids)  # [b, s, D]
        if self.multiplier != 1.0:
            x = x * self.multiplier
        if self.positions is not None:
            if position_ids is None:  # encoders: positions are 0..s-1
                b, s = input_ids.shape
                position_ids = torch.arange(s, device=input_ids.device)[None].expand(b, s)  # [b, s]
            x = x + self.positions(position_ids).to(x.dtype)
        if self.token_types is not None:
            x = x + self.token_types(token_type_ids)
        if self.norm is not None:
            x = self.norm(x)
        return self.drop(x)
