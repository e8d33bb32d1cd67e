"""Categories: one embedding table per column, concatenated."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def embedding_dim(cardinality: int, *, max_dim: int = 32) -> int:
    """A common rule of thumb: grows like cardinality^0.56, capped."""
    return int(min(max_dim, max(2, round(1.6 * cardinality**0.56))))


class CategoryEncoder(nn.Module):
    """``(B, columns) int64 -> (B, sum of embedding dims)``."""

    def __init__(self, *, cardinalities: Sequence[int], max_dim: int = 32) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(
            nn.Embedding(n, embedding_dim(n, max_dim=max_dim)) for n in cardinalities
        )
        self.out_dim = sum(e.embedding_dim for e in self.embeddings)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        # codes: (B, C) -> C tensors of (B, D_c) -> (B, sum D_c)
        return torch.cat([emb(codes[:, i]) for i, emb in enumerate(self.embeddings)], dim=1)
