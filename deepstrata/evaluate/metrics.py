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
