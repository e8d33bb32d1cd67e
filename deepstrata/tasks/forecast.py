"""Forecast: a number per (series, time step) ahead of the history, learnt standardised.

A row here is one step of one series' forecast; its raw output is the median forecast
(standardised, as regression's value). The forecaster's other quantiles are outputs of its
network (:mod:`deepstrata.forecast.network`), trained with :func:`pinball` at each level;
the whole-series figures (MASE, RMSSE, weighted quantile loss, interval coverage) need the
history and live in :mod:`deepstrata.forecast.backtest`. Metrics of rows alone (in the
target's own units): MAE, RMSE and sMAPE.
"""

from __future__ import annotations

import numpy as np

from deepstrata.evaluate.metrics import regression_metrics
from deepstrata.tasks.base import Task
from deepstrata.tasks.regression import Regression


def pinball(output, target, quantiles):
    """Mean pinball (quantile) loss of ``output`` ``(..., Q)`` against ``target`` ``(...)``
    at the levels ``quantiles`` ``(Q,)`` (torch tensors); at 0.5 it is half the MAE."""
    error = target.unsqueeze(-1) - output  # (..., Q)
    return (error * (quantiles - (error < 0).to(output.dtype))).mean()


def smape(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Symmetric MAPE in percent (M4's: 200 |y - f| / (|y| + |f|), 0 where both are 0)."""
    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    denominator = np.abs(actual) + np.abs(predicted)
    ratio = np.divide(
        2 * np.abs(actual - predicted),
        denominator,
        out=np.zeros_like(denominator),
        where=denominator > 0,
    )
    return float(100 * ratio.mean())


class Forecast(Task):
    name = "forecast"
    prediction = "value"
    classical = False  # the classical side of forecasting is its own (forecast.baselines)
    loss_metric = "mae"
    compare_metrics = ("mae", "rmse", "smape")
    metric_names = ("mae", "rmse", "smape")
    higher_is_better = frozenset()

    # A number per step, standardised as a regression target is (by assignment, as the
    # classifiers share ClassTarget's).
    fit_target = Regression.fit_target
    encode = Regression.encode
    decode = Regression.decode

    def examples(self, rng, rows: int) -> list:
        steps = np.arange(rows)
        return (
            (100 + 10 * np.sin(2 * np.pi * steps / 12) + rng.normal(0, 1, rows)).round(2).tolist()
        )

    def raw_width(self, num_classes: int) -> int:
        return 1  # the median; the other quantiles are the forecaster network's

    def loss(self, output, target, *, label_smoothing: float = 0.0):
        import torch

        if label_smoothing:
            raise ValueError("label smoothing is for classifiers, not forecasts")
        return pinball(output.unsqueeze(-1), target.to(output.dtype), torch.tensor([0.5]))

    def epoch_metric(self, output, target, encoder) -> dict:
        return {"mae": float((output - target).abs().mean()) * encoder.std}

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        raise TypeError("a forecast has quantiles, not class probabilities")

    def point_predictions(self, outputs: np.ndarray, decision: dict | None = None) -> np.ndarray:
        return outputs

    def combine(self, outputs, weights) -> np.ndarray:
        return np.average(outputs, axis=0, weights=weights)

    def row_losses(self, outputs, labels) -> np.ndarray:
        return np.abs(outputs.astype(np.float64) - labels)

    def metrics(self, labels, outputs, encoder, decision=None) -> dict[str, float]:
        actual = self.decode(encoder, labels.astype(np.float64))
        predicted = self.decode(encoder, outputs.astype(np.float64))
        figures = regression_metrics(actual, predicted)
        return {"mae": figures["mae"], "rmse": figures["rmse"], "smape": smape(actual, predicted)}

    def calibration_error(self, outputs, labels) -> float:
        raise TypeError("a forecast has quantiles, not class probabilities")
