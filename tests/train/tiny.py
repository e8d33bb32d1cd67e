"""Tiny data and networks the training tests share: a seeded linear regression
problem and a one-block ``Network`` over one dense feature block."""

import torch

from deepstrata.encoders.dense import DenseEncoder
from deepstrata.model.network import Network


def regression_data(rows=256, features=4, seed=0):
    """``({"number": (rows, features)}, (rows,))``: y = x @ [1..features] + a little noise."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, features, generator=gen)
    y = x @ torch.arange(1.0, features + 1) + 0.1 * torch.randn(rows, generator=gen)
    return {"number": x}, y


def network(features=4, seed=0, hidden=(16,), dropout=0.0):
    """A regression ``Network``, its weights drawn from ``seed``."""
    torch.manual_seed(seed)
    return Network(
        encoders={"number": DenseEncoder(width=features)},
        hidden_dims=list(hidden),
        dropout=dropout,
        task="regression",
    )
