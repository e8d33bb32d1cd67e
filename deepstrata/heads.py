"""Task heads: the output layer, the loss, and how outputs become predictions.

Each head maps the combiner's ``(B, hidden)`` to ``(B, out_dim)`` raw outputs
(logits or standardised values) and owns the loss on them. ``probabilities`` and
``point_predictions`` work on NumPy outputs so that the same code serves the
trainer's validation pass, ``Model.predict`` and the server.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class BinaryHead(nn.Module):
    task = "binary"

    def __init__(self, *, in_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).squeeze(-1)  # (B,) logits

    def loss(
        self, output: torch.Tensor, target: torch.Tensor, *, label_smoothing: float = 0.0
    ) -> torch.Tensor:
        target = target.to(output.dtype)
        if label_smoothing:  # 0/1 -> eps/2 and 1 - eps/2, as cross_entropy does for K=2
            target = target * (1 - label_smoothing) + label_smoothing / 2
        return F.binary_cross_entropy_with_logits(output, target)

    @staticmethod
    def probabilities(output: np.ndarray) -> np.ndarray:
        positive = 1.0 / (1.0 + np.exp(-output.astype(np.float64)))
        return np.stack([1.0 - positive, positive], axis=1)  # (B, 2)


class MulticlassHead(nn.Module):
    task = "multiclass"

    def __init__(self, *, in_dim: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)  # (B, K) logits

    def loss(
        self, output: torch.Tensor, target: torch.Tensor, *, label_smoothing: float = 0.0
    ) -> torch.Tensor:
        return F.cross_entropy(output, target, label_smoothing=label_smoothing)

    @staticmethod
    def probabilities(output: np.ndarray) -> np.ndarray:
        shifted = output.astype(np.float64) - output.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return exp / exp.sum(axis=1, keepdims=True)  # (B, K)


class RegressionHead(nn.Module):
    task = "regression"

    def __init__(self, *, in_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).squeeze(-1)  # (B,) standardised target

    def loss(
        self, output: torch.Tensor, target: torch.Tensor, *, label_smoothing: float = 0.0
    ) -> torch.Tensor:
        if label_smoothing:
            raise ValueError("label smoothing is for classifiers, not regression")
        return F.mse_loss(output, target.to(output.dtype))

    @staticmethod
    def probabilities(output: np.ndarray) -> np.ndarray:
        raise TypeError("a regression model has no class probabilities")


def build_head(task: str, *, in_dim: int, num_classes: int = 0) -> nn.Module:
    if task == "binary":
        return BinaryHead(in_dim=in_dim)
    if task == "multiclass":
        return MulticlassHead(in_dim=in_dim, num_classes=num_classes)
    if task == "regression":
        return RegressionHead(in_dim=in_dim)
    raise ValueError(f"unknown task {task!r}")


def probabilities(task: str, output: np.ndarray) -> np.ndarray:
    """``(B, K)`` class probabilities from raw outputs (binary: ``(B,)`` logits)."""
    if task == "binary":
        return BinaryHead.probabilities(output)
    if task == "multiclass":
        return MulticlassHead.probabilities(output)
    raise TypeError("a regression model has no class probabilities")


def point_predictions(task: str, output: np.ndarray) -> np.ndarray:
    """Class indices (classification) or standardised values (regression)."""
    if task == "binary":
        return (output > 0).astype(np.int64)
    if task == "multiclass":
        return output.argmax(axis=1)
    return output
