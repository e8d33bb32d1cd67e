"""Text columns, the light way: the mean of word embeddings per column."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from deepstrata.preprocess.text import PAD


class BagOfWordsEncoder(nn.Module):
    """``(B, sum of lengths) int64 -> (B, columns * dim)``."""

    def __init__(
        self, *, vocabulary_sizes: Sequence[int], lengths: Sequence[int], dim: int = 32
    ) -> None:
        super().__init__()
        self.lengths = list(lengths)
        self.bags = nn.ModuleList(
            nn.EmbeddingBag(n, dim, mode="mean", padding_idx=PAD) for n in vocabulary_sizes
        )
        self.out_dim = dim * len(vocabulary_sizes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        columns = ids.split(self.lengths, dim=1)  # C tensors of (B, L_c)
        return torch.cat([bag(col) for bag, col in zip(self.bags, columns)], dim=1)
