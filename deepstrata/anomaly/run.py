"""``deepstrata anomalies``: score every row of a table without labels.

:func:`check_request` refuses bad input before any work (the label column, the
contamination, the threshold, columns no network can turn into features);
:func:`find_anomalies` builds the features, trains the autoencoder, scores the rows,
scores them again with an isolation forest (the classical baseline), and, given a label
column, measures both against it (PR-AUC, recall at precision 0.9).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from deepstrata.anomaly.detector import (
    Detector,
    fit_autoencoder,
    reconstruction_errors,
    scaling,
    standardise,
)
from deepstrata.data.schema import Schema, infer_schema
from deepstrata.data.sources import read_table
from deepstrata.data.table import Table
from deepstrata.errors import ConfigError

DEFAULT_CONTAMINATION = 0.01
MAX_CONTAMINATION = 0.5  # more than half the rows unusual: then the usual ones are
PRECISION_TARGET = 0.9  # the fixed precision recall is reported at
MIN_ROWS = 10  # fewer rows say nothing of what is usual (and leave none to stop on)
FOREST_TREES = 100  # scikit-learn's default, and Liu et al.'s (2008)


@dataclass
class Request:
    """What ``anomalies`` was asked, checked (see :func:`check_request`)."""

    table: Table
    schema: Schema
    label: str | None = None
    positive: object = None  # the label value that marks an anomaly
    contamination: float | None = DEFAULT_CONTAMINATION
    threshold: float | None = None
    options: dict = field(default_factory=dict)


@dataclass
class Found:
    """The fitted detector and what it found on the training rows."""

    detector: Detector
    scores: np.ndarray  # autoencoder, one per row
    forest_scores: np.ndarray  # isolation forest, one per row (higher: more unusual)
    flagged: np.ndarray
    metrics: dict
    columns: pd.DataFrame | None = None  # series: their columns and the time, per row


def check_options(contamination: float | None, threshold: float | None) -> None:
    """ConfigError naming the flag: contamination outside (0, 0.5], a non-finite
    threshold, or both given."""
    if contamination is not None and threshold is not None:
        raise ConfigError(
            "give --contamination or --threshold, not both (the threshold replaces the "
            "quantile that the contamination would choose)",
            option="--threshold",
        )
    if contamination is not None and not (0 < contamination <= MAX_CONTAMINATION):
        raise ConfigError(
            f"expected a share of rows in (0, {MAX_CONTAMINATION}], got {contamination:g} "
            "(0.01 flags the 1 % most unusual training rows)",
            option="--contamination",
        )
    if threshold is not None and not np.isfinite(threshold):
        raise ConfigError(f"expected a finite score, got {threshold}", option="--threshold")


def check_request(
    data,
    *,
    label: str | None = None,
    contamination: float | None = DEFAULT_CONTAMINATION,
    threshold: float | None = None,
    ignore: list[str] | tuple = (),
    columns: dict[str, str] | None = None,
) -> Request:
    """The table, its schema and the label's anomaly class; every refusal happens here."""
    from deepstrata.config import with_defaults
    from deepstrata.pretrained.strategy import TABULAR, pretrained_kinds

    check_options(contamination, threshold)
    table = read_table(data)
    frame = table.frame
    if len(frame) < MIN_ROWS:
        raise table.error(
            f"need at least {MIN_ROWS} rows to learn what usual rows look like, found {len(frame)}"
        )
    if label is not None and label not in frame.columns:
        raise table.error(
            f"label column {label!r} is not in the data (columns: {', '.join(frame.columns)})",
            column=label,
        )
    if label is not None and label in ignore:
        raise ConfigError(f"{label!r} is the label; it cannot be ignored too", option="--ignore")
    left_out = [*ignore, *([label] if label is not None else [])]
    schema = infer_schema(frame, target=None, columns=columns, ignore=left_out, source=table.source)
    positive = anomaly_class(table, label) if label is not None else None
    if not schema.inputs:
        raise table.error("no input columns left to score (every column ignored or unusable)")
    networks = pretrained_kinds(schema)
    for feature in schema.inputs:
        if feature.kind not in TABULAR and feature.kind not in networks:
            raise ConfigError(
                f"column {feature.name!r} is {feature.kind}, which has no pretrained network "
                f"to turn it into features; leave it out with --ignore {feature.name}",
                option="--ignore",
            )
    for name in networks.values():
        from deepstrata.pretrained.registry import get

        get(name).require()
    options = with_defaults({"strategy": "features", "pretrained": networks})
    return Request(table, schema, label, positive, contamination, threshold, options)


def anomaly_class(table: Table, label: str):
    """The label value that marks an anomaly: 1 (or True) for a 0/1 or boolean column,
    otherwise the rarer of the two values. A column without exactly two values is a
    DataError naming it."""
    values = table.frame[label].dropna()
    distinct = sorted(values.unique().tolist(), key=str)
    if len(distinct) != 2:
        seen = ", ".join(map(repr, distinct[:5])) or "none"
        raise table.error(
            f"the label column needs two classes (normal and anomaly), found {len(distinct)}: "
            f"{seen}; metrics against one class say nothing",
            column=label,
            hint="give a column of 0/1 or two values, or leave --label out",
        )
    if set(distinct) <= {0, 1}:  # True == 1 and False == 0 too
        return 1
    counts = values.value_counts()
    return counts.index[-1] if counts.iloc[0] != counts.iloc[-1] else distinct[-1]


def find_anomalies(
    request: Request, *, seed: int = 0, max_epochs: int = 200, progress=None
) -> Found:
    """Fit the detector on every row of ``request.table`` and score them (module doc)."""
    from deepstrata.kinds import KINDS, encoder_options
    from deepstrata.pretrained.registry import get

    table, options = request.table, request.options
    note = progress.note if progress is not None else (lambda line: None)
    frame = table.frame
    preprocessors = {
        f.name: KINDS[f.kind].new_preprocessor(options).fit(frame[f.name], table)
        for f in request.schema.inputs
    }
    kept = {
        **encoder_options(sorted({f.kind for f in request.schema.inputs}), options),
        "strategy": "features",
        "pretrained": options["pretrained"],
    }
    identities = [get(name).identity() for name in sorted(set(options["pretrained"].values()))]
    detector = Detector(preprocessors=preprocessors, options=kept, pretrained=identities)
    raw = detector.raw_features(frame, table, cache=True, report=note)
    mean, std = scaling(raw)
    features = standardise(raw, mean, std)
    note(f"{len(features)} rows as {features.shape[1]} features")
    network, history = fit_autoencoder(
        features, seed=seed, max_epochs=max_epochs, progress=progress
    )
    scores = reconstruction_errors(network, features)
    forest = forest_scores(features, seed=seed)
    if request.threshold is not None:
        threshold, rule = float(request.threshold), "given (--threshold)"
    else:
        threshold = float(np.quantile(scores, 1 - request.contamination))
        rule = f"the {1 - request.contamination:.4g} quantile of the training scores"
    detector.fitted(mean=mean, std=std, network=network, threshold=threshold)
    flagged = scores >= threshold
    metrics = {
        "rows": len(scores),
        "features": int(features.shape[1]),
        "threshold": {"value": threshold, "rule": rule, "contamination": request.contamination},
        "flagged": int(flagged.sum()),
        "scores": distribution(scores),
        "training": history,
        "autoencoder": detector.network.sizes(),
    }
    if request.label is not None:
        metrics["label"] = label_metrics(request, scores, forest, flagged)
    return Found(detector, scores, forest, flagged, metrics)


def forest_scores(features: np.ndarray, *, seed: int) -> np.ndarray:
    """scikit-learn's IsolationForest on the same features; higher is more unusual."""
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(n_estimators=FOREST_TREES, random_state=seed, n_jobs=1)
    forest.fit(features)
    return -forest.score_samples(features)


def distribution(scores: np.ndarray) -> dict:
    """Quantiles of the training scores (the bundle keeps them to place new rows' scores)."""
    levels = [0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0]
    values = np.quantile(scores, levels)
    return {
        "mean": float(scores.mean()),
        "quantiles": {f"{level:g}": float(value) for level, value in zip(levels, values)},
    }


def detection_metrics(scores: np.ndarray, truth: np.ndarray) -> dict:
    """PR-AUC (average precision) and recall at precision 0.9 of ``scores`` against
    ``truth`` (True: an anomaly)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    precision, recall, _ = precision_recall_curve(truth, scores)
    reached = recall[precision >= PRECISION_TARGET]
    return {
        "pr_auc": float(average_precision_score(truth, scores)),
        "recall_at_precision_90": float(reached.max()) if len(reached) else 0.0,
    }


def label_metrics(request: Request, scores, forest, flagged) -> dict:
    """Both detectors against the label (rows without a label left out), and the flags'
    precision and recall."""
    values = request.table.frame[request.label]
    known = values.notna().to_numpy()
    truth = (values[known] == request.positive).to_numpy()
    called = flagged[known]
    hits = int((called & truth).sum())
    return {
        "column": request.label,
        "anomaly_class": _plain(request.positive),
        "anomalies": int(truth.sum()),
        "labelled_rows": int(known.sum()),
        "base_rate": float(truth.mean()),
        "autoencoder": detection_metrics(scores[known], truth),
        "isolation_forest": detection_metrics(forest[known], truth),
        "flagged": {
            "precision": hits / int(called.sum()) if called.any() else 0.0,
            "recall": hits / int(truth.sum()),
        },
    }


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def scores_table(found: Found) -> pd.DataFrame:
    """scores.csv: row (1-based), (series: the series columns and the time,) score,
    flagged, isolation_forest_score."""
    extra = found.columns if found.columns is not None else pd.DataFrame()
    return pd.DataFrame(
        {
            "row": np.arange(1, len(found.scores) + 1),
            **{name: extra[name].to_numpy() for name in extra.columns},
            "score": found.scores,
            "flagged": found.flagged,
            "isolation_forest_score": found.forest_scores,
        }
    )
