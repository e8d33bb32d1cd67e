"""Metrics per task, computed with scikit-learn's reference implementations.

Classification: accuracy, balanced accuracy, macro F1, ROC AUC (one-vs-rest,
macro, for several classes), log loss. Multilabel: micro and macro F1, Hamming loss,
subset accuracy, ROC AUC (macro over labels with both values present), log loss (mean
binary cross-entropy). Regression: RMSE, MAE, R².
A metric that is undefined on the given rows (ROC AUC with one class present)
is reported as NaN rather than failing the whole evaluation.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

CLASSIFICATION = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss")
REGRESSION = ("rmse", "mae", "r2")
MULTILABEL = ("f1_micro", "f1_macro", "hamming_loss", "subset_accuracy", "roc_auc", "log_loss")
HIGHER_IS_BETTER = {
    "accuracy",
    "balanced_accuracy",
    "f1_macro",
    "f1_micro",
    "subset_accuracy",
    "roc_auc",
    "r2",
}


def classification_metrics(y_true: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """``y_true``: class indices (n,); ``probabilities``: (n, K) rows summing to 1."""
    from sklearn import metrics

    y_true = np.asarray(y_true)
    num_classes = probabilities.shape[1]
    predicted = probabilities.argmax(axis=1)
    labels = np.arange(num_classes)
    result = {
        "accuracy": float(metrics.accuracy_score(y_true, predicted)),
        "f1_macro": float(
            metrics.f1_score(
                y_true, predicted, average="macro", labels=np.unique(y_true), zero_division=0
            )
        ),
        "log_loss": float(
            metrics.log_loss(y_true, np.clip(probabilities, 1e-15, 1), labels=labels)
        ),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        result["balanced_accuracy"] = float(metrics.balanced_accuracy_score(y_true, predicted))
    present = np.unique(y_true)
    if len(present) < 2:
        result["roc_auc"] = math.nan
    elif num_classes == 2:
        result["roc_auc"] = float(metrics.roc_auc_score(y_true, probabilities[:, 1]))
    elif len(present) == num_classes:
        result["roc_auc"] = float(
            metrics.roc_auc_score(y_true, probabilities, multi_class="ovr", average="macro")
        )
    else:  # some classes absent from these rows: average over the ones present
        scores = [metrics.roc_auc_score(y_true == k, probabilities[:, k]) for k in present]
        result["roc_auc"] = float(np.mean(scores))
    return {name: result[name] for name in CLASSIFICATION}


def regression_metrics(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    from sklearn import metrics

    y_true, predicted = np.asarray(y_true, dtype=float), np.asarray(predicted, dtype=float)
    return {
        "rmse": float(np.sqrt(metrics.mean_squared_error(y_true, predicted))),
        "mae": float(metrics.mean_absolute_error(y_true, predicted)),
        "r2": float(metrics.r2_score(y_true, predicted)) if len(y_true) > 1 else math.nan,
    }


def multilabel_metrics(
    labels: np.ndarray, probabilities: np.ndarray, predicted: np.ndarray
) -> dict[str, float]:
    """``labels`` and ``predicted``: (n, L) 0/1; ``probabilities``: (n, L), each label's own."""
    from sklearn import metrics

    truth = (np.asarray(labels) > 0.5).astype(np.int64)
    predicted = np.asarray(predicted).astype(np.int64)
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-15, 1 - 1e-15)
    both = [k for k in range(truth.shape[1]) if 0 < truth[:, k].sum() < len(truth)]
    result = {
        "f1_micro": float(metrics.f1_score(truth, predicted, average="micro", zero_division=0)),
        "f1_macro": float(metrics.f1_score(truth, predicted, average="macro", zero_division=0)),
        "hamming_loss": float(metrics.hamming_loss(truth, predicted)),
        "subset_accuracy": float(metrics.accuracy_score(truth, predicted)),
        "roc_auc": float(np.mean([metrics.roc_auc_score(truth[:, k], p[:, k]) for k in both]))
        if both
        else math.nan,
        "log_loss": float(-(truth * np.log(p) + (1 - truth) * np.log1p(-p)).mean()),
    }
    return {name: result[name] for name in MULTILABEL}


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, *, bins: int = 15
) -> float:
    """Top-label ECE: ``sum_b |accuracy_b - confidence_b| * n_b / B``.

    ``probabilities``: ``(B, K)`` rows summing to 1 (binary as ``(B, 2)``);
    ``labels``: ``(B,)`` class indices. Bins split ``[0, 1]`` into ``bins`` equal
    widths, each closed on the right: ``((b - 1) / bins, b / bins]``.
    Returns 0.0 for no rows.

    >>> probabilities = np.array([[0.85, 0.15], [0.25, 0.75]])
    >>> round(expected_calibration_error(probabilities, np.array([0, 0]), bins=10), 6)
    0.45
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels)
    if probabilities.ndim != 2:
        raise ValueError(
            f"probabilities must be (B, K), got shape {probabilities.shape}; "
            "for binary pass np.column_stack([1 - p, p])"
        )
    if labels.shape != (len(probabilities),):
        raise ValueError(f"labels must be (B,) = ({len(probabilities)},), got shape {labels.shape}")
    if bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins}")
    if len(labels) == 0:
        return 0.0
    confidence = probabilities.max(axis=1)  # (B,)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)  # (B,)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.searchsorted(edges[1:-1], confidence, side="left")  # (B,) in [0, bins)
    # |accuracy_b - confidence_b| * n_b is the absolute per-bin sum of (correct - confidence).
    gap = np.bincount(which, weights=correct - confidence, minlength=bins)  # (bins,)
    return float(np.abs(gap).sum() / len(labels))
