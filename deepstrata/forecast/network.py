"""The forecaster's network: a TiDE-style MLP encoder-decoder (Das et al., 2023).

Why TiDE rather than N-BEATS/N-HiTS: the issue asks for known-ahead covariates (calendar,
announced promotions), static covariates and past-only ones; N-BEATS reads the lookback
alone, whereas TiDE's encoder takes all three and its per-step decoder reads each future
step's covariates, so a promotion on step 5 moves step 5. It is all dense layers: quick on
CPUs, and as accurate as transformers on the long-horizon benchmarks in its paper.

Shapes (B windows, L lookback, H horizon, C covariates per step, P past-only, S static,
Q quantiles)::

    covariates (B, L+H, C) --per-step residual block--> (B, L+H, c)
    [history (B, L) | projected (B, (L+H)c) | past (B, L·P) | static (B, S)]
        --encoder blocks--> (B, hidden) --decoder block--> (B, H·d) -> (B, H, d)
    [(B, H, d) | projected future steps (B, H, c)] --temporal block--> (B, H, Q)
    + a linear map of the history straight to (B, H, Q)   (the global skip)

Outputs are in the window's scaled units (see :mod:`deepstrata.forecast.windows`).
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """``x -> Linear(ReLU(Linear(x))) + Linear(x)``, dropout and layer norm (TiDE's block)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, out_dim),
            nn.Dropout(dropout),
        )
        self.skip = nn.Linear(in_dim, out_dim)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.dense(x) + self.skip(x))


class TiDE(nn.Module):
    """``inputs -> (B, H, Q)`` quantile forecasts (see the module doc for the shapes)."""

    def __init__(
        self,
        *,
        lookback: int,
        horizon: int,
        covariate_dim: int,
        past_dim: int = 0,
        static_dim: int = 0,
        num_quantiles: int = 3,
        hidden_dim: int = 128,
        decoder_dim: int = 16,
        projected_dim: int = 4,
        num_layers: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.lookback, self.horizon, self.num_quantiles = lookback, horizon, num_quantiles
        self.decoder_dim = decoder_dim
        self.project = ResidualBlock(covariate_dim, hidden_dim, projected_dim, dropout)
        encoder_in = (
            lookback + (lookback + horizon) * projected_dim + lookback * past_dim + static_dim
        )
        blocks = [ResidualBlock(encoder_in, hidden_dim, hidden_dim, dropout)]
        blocks += [
            ResidualBlock(hidden_dim, hidden_dim, hidden_dim, dropout)
            for _ in range(num_layers - 1)
        ]
        self.encoder = nn.Sequential(*blocks)
        self.decoder = ResidualBlock(hidden_dim, hidden_dim, horizon * decoder_dim, dropout)
        self.temporal = ResidualBlock(
            decoder_dim + projected_dim, hidden_dim, num_quantiles, dropout
        )
        self.skip = nn.Linear(lookback, horizon * num_quantiles)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        history = inputs["history"]  # (B, L)
        batch = history.shape[0]
        projected = self.project(inputs["covariates"])  # (B, L+H, c)
        encoded = self.encoder(
            torch.cat(
                [
                    history,
                    projected.flatten(1),
                    inputs["past"].flatten(1),  # (B, L·P)
                    inputs["static"],  # (B, S)
                ],
                dim=1,
            )
        )  # (B, hidden)
        decoded = self.decoder(encoded).view(batch, self.horizon, self.decoder_dim)  # (B, H, d)
        future = projected[:, self.lookback :]  # (B, H, c)
        steps = self.temporal(torch.cat([decoded, future], dim=2))  # (B, H, Q)
        return steps + self.skip(history).view(batch, self.horizon, self.num_quantiles)


def build_network(architecture: dict) -> TiDE:
    """The network an architecture dict (as a bundle keeps it) describes."""
    return TiDE(**architecture)
