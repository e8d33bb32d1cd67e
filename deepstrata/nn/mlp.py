"""A multi-layer perceptron block: (Linear -> LayerNorm -> GELU -> Dropout) x depth.

LayerNorm rather than BatchNorm: a row's prediction must not depend on which
other rows share its batch (single-row serving, sklearn's subset invariance).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class MLP(nn.Module):
    """``(B, in_dim) -> (B, hidden_dims[-1])``; identity when ``hidden_dims`` is empty.

    ``dropout`` is one rate for every block or one rate per block.
    """

    def __init__(
        self,
        *,
        in_dim: int,
        hidden_dims: Sequence[int],
        dropout: float | Sequence[float] = 0.0,
    ) -> None:
        super().__init__()
        rates = [dropout] * len(hidden_dims) if isinstance(dropout, int | float) else list(dropout)
        if len(rates) != len(hidden_dims):
            raise ValueError(f"{len(hidden_dims)} blocks but {len(rates)} dropout rates")
        layers: list[nn.Module] = []
        width = in_dim
        for hidden, rate in zip(hidden_dims, rates):
            layers += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.GELU()]
            if rate > 0:
                layers.append(nn.Dropout(rate))
            width = hidden
        self.layers = nn.Sequential(*layers)
        self.out_dim = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
