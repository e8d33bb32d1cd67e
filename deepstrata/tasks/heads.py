"""The network's output layer: one linear map to a task's raw outputs, and its loss.

Every task's head is the same module, ``Linear(in_dim, width)`` (width: one value or logit,
or one per class or label; squeezed to ``(B,)`` when it is one), whose ``loss`` is the
task's own (:meth:`deepstrata.tasks.base.Task.loss`). The tasks' files need no torch to be
imported, so that code which only asks a task what it is (a classical head being loaded,
the command line) stays light.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class TaskHead(nn.Module):
    """``(B, in_dim) -> (B,)`` or ``(B, width)`` raw outputs of ``task``."""

    def __init__(self, *, task: str, in_dim: int, width: int) -> None:
        super().__init__()
        self.task = task
        self.width = width
        self.linear = nn.Linear(in_dim, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = self.linear(x)
        return output.squeeze(-1) if self.width == 1 else output  # (B,) or (B, width)

    def loss(
        self, output: torch.Tensor, target: torch.Tensor, *, label_smoothing: float = 0.0, **weight
    ) -> torch.Tensor:
        from deepstrata.tasks import get

        return get(self.task).loss(output, target, label_smoothing=label_smoothing, **weight)

    def probabilities(self, output: np.ndarray) -> np.ndarray:
        from deepstrata.tasks import get

        return get(self.task).probabilities(output)

    def extra_repr(self) -> str:
        return f"task={self.task!r}"
