"""Numbers, booleans and dates arrive already scaled: the encoder passes them on.

Their mixing happens in the combiner's first linear layer, which is cheaper
than a linear layer per column and exactly as expressive.
"""

from __future__ import annotations

import torch
from torch import nn


class DenseEncoder(nn.Module):
    """``(B, width) -> (B, width)``: identity over an already-scaled float block."""

    def __init__(self, *, width: int) -> None:
        super().__init__()
        self.out_dim = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def build_dense_encoder(preprocessors, options: dict) -> DenseEncoder:
    """The encoder of a dense kind's columns (number, boolean, datetime), side by side."""
    return DenseEncoder(width=sum(p.width for p in preprocessors))
