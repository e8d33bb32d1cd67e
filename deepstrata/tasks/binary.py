"""Binary classification: two classes, one logit per row (> 0: the second class).

Loss: binary cross-entropy on the logit (label smoothing moves 0/1 to eps/2, 1 - eps/2,
as cross-entropy does for two classes). Calibration: one temperature dividing the logit.
Metrics: accuracy, balanced accuracy, macro F1, ROC AUC and log loss. A **decision**
``{"threshold": t}`` (chosen on held-out rows when a class is rare or ``--threshold`` asks:
:mod:`deepstrata.tasks.imbalance`) calls a row positive when its probability reaches ``t``,
and adds the rare-class figures: PR-AUC, recall at precision 0.9, precision, recall, F1
and the confusion counts at ``t``.
"""

from __future__ import annotations

import numpy as np

from deepstrata.evaluate.metrics import CLASSIFICATION, classification_metrics
from deepstrata.options.imbalance import parse_threshold
from deepstrata.tasks.base import (
    CLASS_COMPARE_METRICS,
    CLASS_HIGHER_IS_BETTER,
    ClassTarget,
    Task,
    log_loss_rows,
    logits_of_mean,
    sigmoid,
    smoothed,
)
from deepstrata.tasks.imbalance import RARE, choose_threshold, rare_metrics


class Binary(Task):
    name = "binary"
    weighs_classes = True
    thresholded = True
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
        return [["no", "yes"][i] for i in rng.integers(0, 2, rows)]

    def raw_width(self, num_classes: int) -> int:
        return 1

    def loss(self, output, target, *, label_smoothing: float = 0.0, weight=None):
        """The training loss on raw outputs (a torch scalar); ``weight``: per row (the
        weighted mean: fairness reweighing), None: equal."""
        from torch.nn import functional as F

        target = smoothed(target.to(output.dtype), label_smoothing)
        if weight is not None:
            losses = F.binary_cross_entropy_with_logits(output, target, reduction="none")
            return (losses * weight).sum() / weight.sum()
        return F.binary_cross_entropy_with_logits(output, target)

    def epoch_metric(self, output, target, encoder) -> dict:
        return {"accuracy": float(((output > 0).long() == target).float().mean())}

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        positive = sigmoid(outputs)
        return np.stack([1.0 - positive, positive], axis=1)  # (B, 2)

    def point_predictions(self, outputs: np.ndarray, decision: dict | None = None) -> np.ndarray:
        if decision and decision.get("threshold") is not None:
            return (sigmoid(outputs) >= decision["threshold"]).astype(np.int64)
        return (outputs > 0).astype(np.int64)

    def combine(self, outputs, weights) -> np.ndarray:
        log_mean = logits_of_mean([self.probabilities(o) for o in outputs], weights)  # (B, 2)
        return log_mean[:, 1] - log_mean[:, 0]

    def row_losses(self, outputs, labels) -> np.ndarray:
        return log_loss_rows(self.probabilities(outputs), labels)

    def metrics(self, labels, outputs, encoder, decision=None) -> dict[str, float]:
        result = classification_metrics(labels, self.probabilities(outputs))
        if decision and decision.get("threshold") is not None:
            from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

            called = self.point_predictions(outputs, decision)
            result["accuracy"] = float(accuracy_score(labels, called))
            result["balanced_accuracy"] = float(balanced_accuracy_score(labels, called))
            result["f1_macro"] = float(f1_score(labels, called, average="macro", zero_division=0))
            result.update(rare_metrics(sigmoid(outputs), labels, decision["threshold"]))
        return result

    def decide(self, outputs: np.ndarray, labels: np.ndarray, threshold: str = "auto"):
        """A threshold chosen on these held-out rows when ``threshold`` names a rule, or
        by F1 when it is ``auto`` and the rarer class is under 10 % of them; else None
        (0.5, the argmax)."""
        rule, amount = parse_threshold(threshold)
        if rule == "auto":
            share = min(np.mean(labels == 1), np.mean(labels == 0)) if len(labels) else 0.5
            if share >= RARE:
                return None
            rule = "f1"
        return choose_threshold(sigmoid(outputs), labels, rule, amount)

    def head_score(self, outputs, labels) -> tuple[float, dict]:
        metrics = classification_metrics(labels, self.probabilities(outputs))
        return metrics["accuracy"], metrics

    def classical_outputs(self, scores: np.ndarray) -> np.ndarray:
        return scores[:, 0]

    def calibration_nll(self, logits, target):
        import torch
        from torch.nn import functional as F

        if logits.ndim != 1:
            raise ValueError(f"binary logits must be (B,), got shape {tuple(logits.shape)}")
        target = target.to(torch.float64)

        def nll(temperature: float) -> float:
            return F.binary_cross_entropy_with_logits(logits / temperature, target).item()

        return nll
