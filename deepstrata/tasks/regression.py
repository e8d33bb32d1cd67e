"""Regression: a number per row, learnt standardised (mean 0, std 1 on the training rows).

Loss: mean squared error on the standardised value. No calibration. Metrics (in the
target's own units): RMSE, MAE and R².
"""

from __future__ import annotations

import numpy as np

from deepstrata.evaluate.metrics import REGRESSION, regression_metrics
from deepstrata.tasks.base import Task
from deepstrata.values import numbers


class Regression(Task):
    name = "regression"
    prediction = "value"
    loss_metric = "mse"
    compare_metrics = ("r2", "rmse", "mae")  # deepstrata compare's choices; the first by default
    metric_names = REGRESSION
    higher_is_better = frozenset({"r2"})

    def fit_target(self, encoder, column, fail) -> None:
        values = numbers(column, fail)
        encoder.mean = float(np.nanmean(values))
        encoder.std = float(np.nanstd(values)) or 1.0

    def encode(self, encoder, column, fail) -> np.ndarray:
        return ((numbers(column, fail) - encoder.mean) / encoder.std).astype(np.float32)

    def decode(self, encoder, point: np.ndarray) -> np.ndarray:
        return point * encoder.std + encoder.mean

    def examples(self, rng, rows: int) -> list:
        return rng.normal(50, 10, rows).round(2).tolist()

    def raw_width(self, num_classes: int) -> int:
        return 1

    def loss(self, output, target, *, label_smoothing: float = 0.0):
        from torch.nn import functional as F

        if label_smoothing:
            raise ValueError("label smoothing is for classifiers, not regression")
        return F.mse_loss(output, target.to(output.dtype))

    def epoch_metric(self, output, target, encoder) -> dict:
        return {"rmse": float(((output - target) ** 2).mean().sqrt()) * encoder.std}

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        raise TypeError("a regression model has no class probabilities")

    def point_predictions(self, outputs: np.ndarray, decision: dict | None = None) -> np.ndarray:
        return outputs

    def combine(self, outputs, weights) -> np.ndarray:
        return np.average(outputs, axis=0, weights=weights)

    def row_losses(self, outputs, labels) -> np.ndarray:
        return (outputs.astype(np.float64) - labels) ** 2

    def metrics(self, labels, outputs, encoder, decision=None) -> dict[str, float]:
        return regression_metrics(
            self.decode(encoder, labels.astype(np.float64)), self.decode(encoder, outputs)
        )

    def head_score(self, outputs, labels) -> tuple[float, dict]:
        metrics = regression_metrics(labels.astype(np.float64), outputs)  # standardised units
        return -metrics["rmse"], metrics

    def classical_outputs(self, scores: np.ndarray) -> np.ndarray:
        return scores[:, 0]

    def calibration_error(self, outputs, labels) -> float:
        raise TypeError("a regression model has no class probabilities")
