"""Output heads. Each takes the final hidden states [b, s, D] and the attention mask [b, s].

- CausalLMHead: logits = x W^T (+ b); W is the token embedding when tied; then times
  ``logit_scale`` and soft-capped, softcap * tanh(logits / softcap), when ``softcap`` is set.
- MaskedLMHead: decoder(norm(act(dense(x)))) (BERT's transform + decoder), tied likewise.
- EmbeddingsHead: pooled sentence vectors (cls / mask-aware mean / last real token), then the
  optional dense+tanh pooler and L2 normalisation.
- ClassificationHead: pooled (+ pooler) -> classifier logits [b, num_labels].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from compiler.components.ffn import ACTIVATIONS


def _pool_cls(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return x[:, 0]  # [b, D]


def _pool_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens only; a fully padded row gives zeros, not NaN."""
    m = mask.to(x.dtype)[..., None]  # [b, s, 1]
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)  # [b, D]


def _pool_last(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The last real token of each row (right or left padding alike; position 0 if none)."""
    s = mask.shape[1]
    index = (torch.arange(s, device=mask.device)[None] * mask.bool()).amax(dim=1)  # [b]
    rows = torch.arange(x.shape[0], device=x.device)  # [b]
    return x[rows, index]  # [b, D]


POOLING = {"cls": _pool_cls, "mean": _pool_mean, "last": _pool_last}


class CausalLMHead(nn.Module):
    def __init__(self, embed_dim: int, vocab_size: int, bias: bool, *, logit_scale: float = 1.0,
                 softcap: float | None = None):
        super().__init__()
        self.proj = nn.Linear(embed_dim, vocab_size, bias=bias)
        self.logit_scale, self.softcap = logit_scale, softcap

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        logits = self.proj(x)  # [b, s, vocab]
        if self.logit_scale != 1.0:
            logits = logits * self.logit_scale
        if self.softcap is not None:  # divide, tanh, multiply: Gemma 2's own order
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


class MaskedLMHead(nn.Module):
    def __init__(self, embed_dim: int, vocab_size: int, *, activation: str, dense_bias: bool,
                 decoder_bias: bool, norm: nn.Module):
        super().__init__()
        self.dense = nn.Linear(embed_dim, embed_dim, bias=dense_bias)
        self.act = ACTIVATIONS[activation]
        self.norm = norm
        self.decoder = nn.Linear(embed_dim, vocab_size, bias=decoder_bias)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(self.act(self.dense(x))))  # [b, s, vocab]


class Pooled(nn.Module):
    """Pooling + optional dense/tanh pooler; the shared front of the embeddings and
    classification heads."""

    def __init__(self, embed_dim: int, pooling: str, pooler: str):
        super().__init__()
        self.pool = POOLING[pooling]
        self.pooler = nn.Linear(embed_dim, embed_dim) if pooler == "dense_tanh" else None

    def pooled(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        p = self.pool(x, attention_mask)  # [b, D]
        return p if self.pooler is None else torch.tanh(self.pooler(p))


class EmbeddingsHead(Pooled):
    def __init__(self, embed_dim: int, pooling: str, pooler: str, normalize: bool):
        super().__init__(embed_dim, pooling, pooler)
        self.normalize = normalize

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        p = self.pooled(x, attention_mask)  # [b, D]
        return F.normalize(p, p=2.0, dim=-1) if self.normalize else p


class ClassificationHead(Pooled):
    def __init__(self, embed_dim: int, num_labels: int, pooling: str, pooler: str):
        super().__init__(embed_dim, pooling, pooler)
        self.classifier = nn.Linear(embed_dim, num_labels)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pooled(x, attention_mask))  # [b, num_labels]
