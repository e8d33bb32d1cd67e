"""Multiclass classification: one of K classes, one logit per class (softmax).

Loss: cross-entropy (with optional label smoothing). Calibration: one temperature
dividing every logit. Metrics: accuracy, balanced accuracy, macro F1, ROC AUC
(one-vs-rest, macro) and log loss.
"""

from __future__ import annotations

import numpy as np

from deepstrata.evaluate.metrics import CLASSIFICATION, classification_metrics
from deepstrata.tasks.base import (
    CLASS_COMPARE_METRICS,
    CLASS_HIGHER_IS_BETTER,
    ClassTarget,
    Task,
    log_loss_rows,
    logits_of_mean,
)


class Multiclass(Task):
    name = "multiclass"
    weighs_classes = True
    prediction = "class"
    compare_metrics = CLASS_COMPARE_METRICS  # deepstrata compare's choices; the first by default
    metric_names = CLASSIFICATION
    higher_is_better = CLASS_HIGHER_IS_BETTER
    # One class per row: the target's classes, indices and labels (shared with the other
    # single-label task, by assignment).
    fit_target = ClassTarget.fit_target
    encode = ClassTarget.encode
    decode = ClassTarget.decode

    def examples(self, rng, rows: int) -> list:
        return [["cat", "dog", "fox"][i] for i in rng.integers(0, 3, rows)]

    def raw_width(self, num_classes: int) -> int:
        return num_classes

    def loss(self, output, target, *, label_smoothing: float = 0.0):
        from torch.nn import functional as F

        return F.cross_entropy(output, target, label_smoothing=label_smoothing)

    def epoch_metric(self, output, target, encoder) -> dict:
        return {"accuracy": float((output.argmax(1) == target).float().mean())}

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        shifted = outputs.astype(np.float64) - outputs.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return exp / exp.sum(axis=1, keepdims=True)  # (B, K)

    def point_predictions(self, outputs: np.ndarray, decision: dict | None = None) -> np.ndarray:
        return outputs.argmax(axis=1)

    def combine(self, outputs, weights) -> np.ndarray:
        return logits_of_mean([self.probabilities(o) for o in outputs], weights)  # (B, K)

    def row_losses(self, outputs, labels) -> np.ndarray:
        return log_loss_rows(self.probabilities(outputs), labels)

    def metrics(self, labels, outputs, encoder, decision=None) -> dict[str, float]:
        return classification_metrics(labels, self.probabilities(outputs))

    def head_score(self, outputs, labels) -> tuple[float, dict]:
        metrics = classification_metrics(labels, self.probabilities(outputs))
        return metrics["accuracy"], metrics

    def calibration_nll(self, logits, target):
        import torch
        from torch.nn import functional as F

        if logits.ndim != 2:
            raise ValueError(f"multiclass logits must be (B, K), got shape {tuple(logits.shape)}")
        target = target.to(torch.int64)

        def nll(temperature: float) -> float:
            return F.cross_entropy(logits / temperature, target).item()

        return nll
