"""Categories: one embedding table per column, concatenated (a network learns them); for
a classical model under ``--strategy features``, one-hot indicators instead."""

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


def build_category_encoder(preprocessors, options: dict) -> CategoryEncoder:
    return CategoryEncoder(cardinalities=[p.cardinality for p in preprocessors])


class OneHot(nn.Module):
    """``(B, C)`` int64 category ids -> ``(B, sum of cardinalities)`` float indicators."""

    def __init__(self, *, cardinalities: Sequence[int]) -> None:
        super().__init__()
        self.cardinalities = list(cardinalities)
        self.out_dim = sum(self.cardinalities)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        columns = [
            nn.functional.one_hot(codes[:, i], n).float() for i, n in enumerate(self.cardinalities)
        ]
        return torch.cat(columns, dim=1) if columns else codes.new_zeros(len(codes), 0).float()


def build_one_hot(preprocessors, options: dict) -> OneHot:
    """The features-mode block of a kind's category columns."""
    return OneHot(cardinalities=[p.cardinality for p in preprocessors])
