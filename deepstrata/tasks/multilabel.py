"""Multilabel classification: any number of labels per row, one logit (a sigmoid) per label.

A target cell holds a row's labels: a list (Parquet, JSON Lines, a DataFrame) or text
with the labels separated by ``|`` (``drama|comedy``). An empty list, empty text or an
empty cell is a row with no label: a CSV file cannot tell an empty cell from a missing
one, and a row with none of the labels is common (a film of no listed genre). Labels are encoded as a
``(N, L)`` float32 indicator, one column per label seen in training (sorted).

Loss: binary cross-entropy per label, averaged. Calibration: one temperature dividing
every logit, fitted on the validation rows; then **a threshold per label**, chosen on
the same rows to maximise that label's F1 (0.5 when the rows hold no positive of it),
stored in the bundle as the decision. A label is predicted when its probability reaches
its threshold. Metrics: micro and macro F1, Hamming loss (the share of wrong cells),
subset accuracy (rows with every label right), ROC AUC (macro over labels with both
values present) and log loss (mean binary cross-entropy).

>>> import pandas as pd
>>> from deepstrata.preprocess.target import TargetEncoder
>>> encoder = TargetEncoder("multilabel")
>>> column = pd.Series(["drama|comedy", "drama", ""], name="genres")
>>> encoder.fit(column, None).classes
['comedy', 'drama']
>>> encoder.encode(column, None).tolist()
[[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]
>>> encoder.decode(np.array([[1, 0], [0, 0]])).tolist()
[['comedy'], []]
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from deepstrata.evaluate.metrics import MULTILABEL, multilabel_metrics
from deepstrata.tasks import LABEL_SEPARATOR
from deepstrata.tasks.base import Task, natural_order, sigmoid, smoothed

THRESHOLDS = np.round(np.linspace(0.05, 0.95, 19), 2)  # the grid per-label thresholds come from


def label_lists(column: pd.Series) -> list[list[str] | None]:
    """Each cell's labels (stripped, without empties or repeats); a missing cell has none."""
    rows: list[list[str]] = []
    for cell in column.tolist():
        if isinstance(cell, list | tuple | np.ndarray):
            items = [str(item).strip() for item in cell if item is not None]
        elif cell is None or (isinstance(cell, float) and math.isnan(cell)):
            items = []
        else:
            items = [part.strip() for part in str(cell).split(LABEL_SEPARATOR)]
        rows.append(list(dict.fromkeys(item for item in items if item)))
    return rows


class Multilabel(Task):
    name = "multilabel"
    prediction = "labels"
    classical = False  # the classical heads predict one class per row
    compare_metrics = (
        "f1_micro",
        "f1_macro",
        "subset_accuracy",
        "roc_auc",
    )  # deepstrata compare's choices; the first by default
    metric_names = MULTILABEL
    higher_is_better = frozenset({"f1_micro", "f1_macro", "subset_accuracy", "roc_auc"})

    def missing_targets(self, column: pd.Series) -> np.ndarray:
        return np.zeros(len(column), dtype=bool)  # an empty cell: no label (see the module doc)

    def fit_target(self, encoder, column, fail) -> None:
        labels = {label for row in label_lists(column) if row for label in row}
        encoder.classes = sorted(labels, key=natural_order)
        if not encoder.classes:
            fail(np.ones(len(column), dtype=bool), "no row of the target holds a label")

    def encode(self, encoder, column, fail) -> np.ndarray:
        index = {label: i for i, label in enumerate(encoder.classes)}
        rows = label_lists(column)
        indicator = np.zeros((len(rows), len(index)), dtype=np.float32)  # (N, L)
        unknown = np.zeros(len(rows), dtype=bool)
        for position, row in enumerate(rows):
            for label in row or []:
                if label in index:
                    indicator[position, index[label]] = 1.0
                else:
                    unknown[position] = True
        if unknown.any():
            fail(
                unknown,
                "target value {value} holds a label the model was not trained on "
                f"(labels: {', '.join(encoder.classes)})",
            )
        return indicator

    def decode(self, encoder, point: np.ndarray) -> np.ndarray:
        """``(N, L)`` 0/1 -> an object array of label lists."""
        names = encoder.labels()
        decoded = np.empty(len(point), dtype=object)
        for position, row in enumerate(np.asarray(point)):
            decoded[position] = [names[i] for i in np.flatnonzero(row)]
        return decoded

    def examples(self, rng, rows: int) -> list:
        labels = ("drama", "comedy", "short")
        return ["|".join(name for name in labels if rng.random() < 0.4) for _ in range(rows)]

    def raw_width(self, num_classes: int) -> int:
        return num_classes

    def loss(self, output, target, *, label_smoothing: float = 0.0):
        from torch.nn import functional as F

        target = smoothed(target.to(output.dtype), label_smoothing)
        return F.binary_cross_entropy_with_logits(output, target)

    def epoch_metric(self, output, target, encoder) -> dict:
        predicted = (output > 0).to(target.dtype)  # (B, L)
        true_positive = float((predicted * target).sum())
        wrong = float((predicted != target).sum())
        f1 = 2 * true_positive / max(2 * true_positive + wrong, 1.0)
        return {
            "accuracy": float((predicted == target).all(dim=1).float().mean()),
            "f1_micro": f1,
        }

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        return sigmoid(outputs)  # (B, L), each label on its own

    def point_predictions(self, outputs: np.ndarray, decision: dict | None = None) -> np.ndarray:
        return (self.probabilities(outputs) >= _thresholds(decision, outputs)).astype(np.int64)

    def combine(self, outputs, weights) -> np.ndarray:
        mean = np.average([self.probabilities(o) for o in outputs], axis=0, weights=weights)
        mean = np.clip(mean, 1e-12, 1 - 1e-12)
        return np.log(mean) - np.log1p(-mean)  # the logits of the mean probabilities

    def row_losses(self, outputs, labels) -> np.ndarray:
        p = np.clip(self.probabilities(outputs), 1e-15, 1 - 1e-15)
        return -(labels * np.log(p) + (1 - labels) * np.log1p(-p)).mean(axis=1)

    def metrics(self, labels, outputs, encoder, decision=None) -> dict[str, float]:
        predicted = self.point_predictions(outputs, decision)
        return multilabel_metrics(labels, self.probabilities(outputs), predicted)

    def calibration_nll(self, logits, target):
        import torch
        from torch.nn import functional as F

        if logits.ndim != 2 or target.shape != logits.shape:
            raise ValueError(
                f"multilabel logits and labels must both be (B, L), got shapes "
                f"{tuple(logits.shape)} and {tuple(target.shape)}"
            )
        target = target.to(torch.float64)

        def nll(temperature: float) -> float:
            return F.binary_cross_entropy_with_logits(logits / temperature, target).item()

        return nll

    def calibration_error(self, outputs, labels) -> float:
        """Every (row, label) cell as a two-way prediction."""
        from deepstrata.evaluate.metrics import expected_calibration_error

        p = self.probabilities(outputs).ravel()
        return expected_calibration_error(np.stack([1 - p, p], axis=1), labels.ravel().astype(int))

    def decide(self, outputs: np.ndarray, labels: np.ndarray, threshold: str = "auto") -> dict:
        """Per label, the threshold on the grid with the best F1 on these rows (ties: the
        one nearest 0.5); 0.5 for a label with no positive row here."""
        probabilities = self.probabilities(outputs)  # (N, L)
        chosen = []
        for column in range(labels.shape[1]):
            truth = labels[:, column] > 0.5
            if not truth.any():
                chosen.append(0.5)
                continue
            predicted = probabilities[:, column][None, :] >= THRESHOLDS[:, None]  # (T, N)
            hits = (predicted & truth).sum(axis=1)
            f1 = 2 * hits / (predicted.sum(axis=1) + truth.sum())
            best = np.flatnonzero(f1 >= f1.max() - 1e-12)
            chosen.append(float(THRESHOLDS[best[np.argmin(np.abs(THRESHOLDS[best] - 0.5))]]))
        return {"thresholds": chosen, "rule": "per-label F1 on held-out rows"}


def _thresholds(decision: dict | None, outputs: np.ndarray) -> np.ndarray:
    if decision and decision.get("thresholds") is not None:
        return np.asarray(decision["thresholds"], dtype=np.float64)[None, :]
    return np.full((1, outputs.shape[1]), 0.5)
