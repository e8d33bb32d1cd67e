"""Per-group metrics and disparities, computed by Fairlearn's ``MetricFrame``.

For a binary classifier, per group: selection rate, true- and false-positive rates,
precision, accuracy, expected calibration error (ECE) and count; then the
demographic-parity difference and ratio, the equalized-odds difference (the larger of the
TPR and FPR differences), the equal-opportunity difference (TPR) and the four-fifths rule
(the smallest selection rate at least 0.8 of the largest). A classifier of several
classes gets accuracy and ECE; a regression the mean absolute error and the mean
residual (truth minus prediction: > 0 means the model predicts too low for that group).

The point values come from ``MetricFrame`` (so they equal Fairlearn's own functions on
the same rows); each comes with a bootstrap interval (:mod:`deepstrata.audit.bootstrap`).
Only groups with enough rows are scored (:mod:`deepstrata.audit.groups`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from deepstrata.audit import bootstrap
from deepstrata.audit.groups import Grouping

BINARY = (
    "selection_rate",
    "true_positive_rate",
    "false_positive_rate",
    "precision",
    "accuracy",
    "ece",
)
CLASSES = ("accuracy", "ece")
REGRESSION = ("mean_error", "mean_residual")
FOUR_FIFTHS = 0.8  # the EEOC's rule of thumb for adverse impact


@dataclass
class Outcomes:
    """What a model did on the audited rows.

    ``kind``: ``binary`` (``truth`` and ``predicted`` are 1 for the positive class, 0
    otherwise; ``probabilities`` ``(N, 2)``: not positive, positive), ``classes``
    (class indices, ``probabilities`` ``(N, K)``) or ``regression`` (values).
    """

    kind: str
    truth: np.ndarray
    predicted: np.ndarray
    probabilities: np.ndarray | None = None

    @property
    def metric_names(self) -> tuple[str, ...]:
        return {"binary": BINARY, "classes": CLASSES, "regression": REGRESSION}[self.kind]

    def subset(self, rows: np.ndarray) -> Outcomes:
        probabilities = None if self.probabilities is None else self.probabilities[rows]
        return Outcomes(self.kind, self.truth[rows], self.predicted[rows], probabilities)


def _ece(y_true, y_pred, rows, *, probabilities: np.ndarray) -> float:
    """ECE of the rows ``rows`` (MetricFrame splits only 1-D sample parameters: the
    ``(N, K)`` probabilities are looked up by row number)."""
    from deepstrata.evaluate.metrics import expected_calibration_error

    return expected_calibration_error(probabilities[np.asarray(rows)], np.asarray(y_true))


def _mean_residual(y_true, y_pred) -> float:
    return float(np.mean(np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float)))


def metric_functions(kind: str, probabilities: np.ndarray | None = None) -> dict:
    """Name -> ``f(y_true, y_pred, **sample_params)`` for MetricFrame (``ece`` takes
    ``rows``, the row numbers into ``probabilities``)."""
    from fairlearn import metrics as fair
    from sklearn import metrics

    if kind == "regression":
        return {
            "mean_error": metrics.mean_absolute_error,
            "mean_residual": _mean_residual,
            "count": fair.count,
        }
    functions = {
        "selection_rate": fair.selection_rate,
        "true_positive_rate": fair.true_positive_rate,
        "false_positive_rate": fair.false_positive_rate,
        "precision": functools.partial(metrics.precision_score, zero_division=np.nan),
        "accuracy": metrics.accuracy_score,
        "ece": functools.partial(_ece, probabilities=probabilities),
        "count": fair.count,
    }
    wanted = (*BINARY, "count") if kind == "binary" else (*CLASSES, "count")
    return {name: functions[name] for name in wanted}


def metric_frame(outcomes: Outcomes, labels: np.ndarray):
    """Fairlearn's MetricFrame of every metric of ``outcomes.kind`` by ``labels``."""
    from deepstrata.audit.requirements import fairlearn_metrics

    fair = fairlearn_metrics()
    params = {}
    if outcomes.kind != "regression":
        params = {"ece": {"rows": np.arange(len(outcomes.truth))}}
    return fair.MetricFrame(
        metrics=metric_functions(outcomes.kind, outcomes.probabilities),
        y_true=outcomes.truth,
        y_pred=outcomes.predicted,
        sensitive_features=labels,
        sample_params=params,
    )


def statistics(outcomes: Outcomes) -> dict:
    """Each metric as a bootstrap statistic over resampled row indices."""
    truth, predicted = outcomes.truth, outcomes.predicted
    if outcomes.kind == "regression":
        residual = truth.astype(float) - predicted.astype(float)
        return {
            "mean_error": bootstrap.mean(np.abs(residual)),
            "mean_residual": bootstrap.mean(residual),
        }
    correct = (truth == predicted).astype(float)
    ece = bootstrap.calibration_error(outcomes.probabilities, truth)
    if outcomes.kind == "classes":
        return {"accuracy": bootstrap.mean(correct), "ece": ece}
    t, p = truth.astype(float), predicted.astype(float)
    ones = np.ones(len(t))
    return {
        "selection_rate": bootstrap.ratio(p, ones),
        "true_positive_rate": bootstrap.ratio(p * t, t),
        "false_positive_rate": bootstrap.ratio(p * (1 - t), 1 - t),
        "precision": bootstrap.ratio(p * t, p),
        "accuracy": bootstrap.mean(correct),
        "ece": ece,
    }


def _number(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def _estimate(value, draws: np.ndarray, level: float) -> dict:
    low, high = bootstrap.interval(draws, level=level)
    return {"value": _number(value), "low": _number(low), "high": _number(high)}


def audit_grouping(
    outcomes: Outcomes, grouping: Grouping, *, resamples: int, level: float, seed: int
) -> dict:
    """One grouping's per-group metrics (with intervals) and its disparities."""
    mask = grouping.mask
    scored = outcomes.subset(mask)
    frame = metric_frame(scored, grouping.labels[mask])
    by_group = frame.by_group
    groups, draws = [], {}
    for number, name in enumerate(grouping.scored):
        rows = np.flatnonzero(grouping.labels[mask] == name)
        draws[name] = bootstrap.resample(
            len(rows),
            statistics(scored.subset(rows)),
            resamples=resamples,
            seed=seed + number,
        )
        values = by_group.loc[name]
        groups.append(
            {
                "group": name,
                "count": int(values["count"]),
                "metrics": {
                    metric: _estimate(values[metric], draws[name][metric], level)
                    for metric in outcomes.metric_names
                },
            }
        )
    return {
        "name": grouping.name,
        "columns": grouping.columns,
        "groups": groups,
        "too_small": [{"group": k, "count": v} for k, v in grouping.too_small.items()],
        "disparities": disparities(outcomes.kind, frame, draws, level),
        **four_fifths(outcomes.kind, frame),
    }


def disparities(kind: str, frame, draws: dict, level: float) -> dict:
    """The disparities of a grouping, each with a bootstrap interval."""
    difference, ratio = frame.difference(method="between_groups"), frame.ratio()

    def resampled(metric: str, how: str) -> np.ndarray:
        return bootstrap.spread([d[metric] for d in draws.values()], how)

    if kind == "regression":
        return {
            f"{m}_difference": _estimate(difference[m], resampled(m, "difference"), level)
            for m in REGRESSION
        }
    result = {
        "accuracy_difference": _estimate(
            difference["accuracy"], resampled("accuracy", "difference"), level
        ),
        "ece_difference": _estimate(difference["ece"], resampled("ece", "difference"), level),
    }
    if kind != "binary":
        return result
    odds = np.fmax(
        resampled("true_positive_rate", "difference"),
        resampled("false_positive_rate", "difference"),
    )
    return {
        "demographic_parity_difference": _estimate(
            difference["selection_rate"], resampled("selection_rate", "difference"), level
        ),
        "demographic_parity_ratio": _estimate(
            ratio["selection_rate"], resampled("selection_rate", "ratio"), level
        ),
        "equalized_odds_difference": _estimate(
            max(difference["true_positive_rate"], difference["false_positive_rate"]), odds, level
        ),
        "equal_opportunity_difference": _estimate(
            difference["true_positive_rate"],
            resampled("true_positive_rate", "difference"),
            level,
        ),
        **result,
    }


def four_fifths(kind: str, frame) -> dict:
    """``{"four_fifths": {...}}`` for a binary classifier: does the group selected least
    get at least 0.8 of the rate of the group selected most?"""
    if kind != "binary":
        return {}
    rates = frame.by_group["selection_rate"].astype(float)
    lowest, highest = rates.idxmin(), rates.idxmax()
    ratio = float(rates[lowest] / rates[highest]) if rates[highest] > 0 else float("nan")
    return {
        "four_fifths": {
            "ratio": _number(ratio),
            "passes": bool(ratio >= FOUR_FIFTHS),
            "lowest": str(lowest),
            "highest": str(highest),
        }
    }


def overall(outcomes: Outcomes) -> dict:
    """Every metric over all audited rows."""
    functions = metric_functions(outcomes.kind, outcomes.probabilities)
    params = {"ece": {"rows": np.arange(len(outcomes.truth))}}
    result = {
        name: _number(function(outcomes.truth, outcomes.predicted, **params.get(name, {})))
        for name, function in functions.items()
    }
    result["count"] = len(outcomes.truth)
    return result


def audit_fairness(
    outcomes: Outcomes,
    groupings: list[Grouping],
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """The fairness audit of ``outcomes`` over each grouping (see the module docstring)."""
    return {
        "overall": overall(outcomes),
        "groupings": [
            audit_grouping(outcomes, g, resamples=resamples, level=level, seed=seed)
            for g in groupings
        ],
        "bootstrap": {"resamples": resamples, "level": level, "seed": seed},
    }
