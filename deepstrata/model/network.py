"""The network: per-kind encoders -> combiner (concat + MLP) -> task head.

``build_network`` is the only place that turns fitted preprocessors plus an
architecture into modules; ``fit`` and ``load`` both call it, so a bundle's
weights always meet the same module tree.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from deepstrata.kinds import KINDS, group_by_kind
from deepstrata.nn.mlp import MLP
from deepstrata.preprocess.base import Preprocessor
from deepstrata.tasks import build_head


class Network(nn.Module):
    """``{kind: (B, width)} -> (B,) or (B, K)`` raw outputs."""

    def __init__(
        self,
        *,
        encoders: dict[str, nn.Module],
        hidden_dims: Sequence[int],
        dropout: float | Sequence[float],
        head: nn.Module | None = None,
        task: str = "regression",
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict(encoders)
        in_dim = sum(encoder.out_dim for encoder in encoders.values())
        self.combiner = MLP(in_dim=in_dim, hidden_dims=hidden_dims, dropout=dropout)
        self.head = head or build_head(task, in_dim=self.combiner.out_dim, num_classes=num_classes)

    def forward(
        self,
        inputs: dict[str, torch.Tensor],
        mix: tuple[torch.Tensor, float] | None = None,
    ) -> torch.Tensor:
        """``mix=(partner, weight)`` blends each row's encoded features with those of row
        ``partner[i]`` (manifold mixup): raw inputs of mixed kinds (category ids, text)
        cannot be averaged, their encodings can."""
        encoded = [
            encoder(inputs[kind]) for kind, encoder in self.encoders.items()
        ]  # (B, D_k) each
        features = encoded[0] if len(encoded) == 1 else torch.cat(encoded, dim=1)  # (B, sum D_k)
        if mix is not None:
            partner, weight = mix
            features = weight * features + (1 - weight) * features[partner]
        return self.head(self.combiner(features))

    def loss(
        self, output: torch.Tensor, target: torch.Tensor, *, label_smoothing: float = 0.0, **weight
    ) -> torch.Tensor:
        """``weight=`` (per row, optional): the rows' weights in the mean loss."""
        return self.head.loss(output, target, label_smoothing=label_smoothing, **weight)


def build_network(
    preprocessors: dict[str, Preprocessor],
    *,
    task: str,
    num_classes: int,
    hidden_dims: Sequence[int],
    dropout: float | Sequence[float],
    options: dict | None = None,
) -> Network:
    """One encoder per kind present among ``preprocessors``, then combiner and head.

    ``options`` are the encoders' settings (see ``Kind.encoder_options``)."""
    encoders = {
        kind: KINDS[kind].build_encoder([preprocessors[name] for name in names], options or {})
        for kind, names in group_by_kind(preprocessors).items()
    }
    return Network(
        encoders=encoders,
        hidden_dims=hidden_dims,
        dropout=dropout,
        task=task,
        num_classes=num_classes,
    )
