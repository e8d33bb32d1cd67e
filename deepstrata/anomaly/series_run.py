"""``deepstrata anomalies DATA --time ts``: score every step of one or many series.

:func:`check_series_request` refuses bad input before any work (a time that does not
parse, named by its line; a time seen twice in a series; no value column or several;
series too short to cross-fit; the label and the contamination as for tables);
:func:`find_series_anomalies` cross-fits the two one-step forecasters
(:mod:`deepstrata.forecast.residuals`), scores every step by its out-of-sample residual
(:class:`~deepstrata.anomaly.series.SeriesDetector`), scores the same steps with an
isolation forest on lag and window features (the classical baseline), and, given a label
column, measures both against it. Only the time, series, value and label columns are
read: other columns are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from deepstrata.anomaly.run import (
    DEFAULT_CONTAMINATION,
    FOREST_TREES,
    MIN_ROWS,
    Found,
    anomaly_class,
    check_options,
    distribution,
    label_metrics,
)
from deepstrata.anomaly.series import (
    MAD_TO_SD,
    SPREAD_FLOOR,
    SeriesDetector,
    locate,
    row_scores,
    scores_of,
    series_keys,
)
from deepstrata.data.sources import read_table
from deepstrata.data.table import Table
from deepstrata.errors import ConfigError, DataError
from deepstrata.forecast import residuals as res
from deepstrata.forecast import windows as win

MIN_HALF = 8  # steps in each half of the longest series: a lookback of 4 and 4 windows
# One season and a few steps: what a one-step forecast needs (last season's step, the
# recent level); every step before it in a series goes unscored, so no more.
EXTRA_LOOKBACK = 4


@dataclass
class SeriesRequest:
    """What ``anomalies --time`` was asked, checked."""

    table: Table
    spec: win.Spec
    panel: win.Panel
    keys: list
    times: pd.Series
    values: np.ndarray
    label: str | None = None
    positive: object = None
    contamination: float | None = DEFAULT_CONTAMINATION
    threshold: float | None = None
    settings: res.Settings = field(default_factory=res.Settings)


def _value_column(table: Table, target, taken: list[str]) -> str:
    frame = table.frame
    if target is not None:
        if target not in frame.columns:
            raise ConfigError(f"no column {target!r} in {table.source}", option="--target")
        if target in taken:
            raise ConfigError(f"{target!r} is the time, a series or the label", option="--target")
        return target
    numeric = [
        name
        for name in frame.columns
        if name not in taken and pd.api.types.is_numeric_dtype(frame[name])
    ]
    if len(numeric) != 1:
        raise ConfigError(
            f"name the column whose values are scored: {len(numeric)} numeric columns "
            f"besides the time, series and label ({', '.join(map(str, numeric)) or 'none'})",
            option="--target",
        )
    return numeric[0]


def check_series_request(
    data,
    *,
    time: str,
    series: list[str] | tuple = (),
    target: str | None = None,
    frequency: str | None = None,
    label: str | None = None,
    contamination: float | None = DEFAULT_CONTAMINATION,
    threshold: float | None = None,
    settings: res.Settings | None = None,
) -> SeriesRequest:
    """The table, its series on their grid and the label's anomaly class; every refusal
    happens here, before any training."""
    check_options(contamination, threshold)
    if frequency is not None:
        try:
            pd.tseries.frequencies.to_offset(frequency)
        except ValueError:
            raise ConfigError(
                f"{frequency!r} is not a pandas frequency (D, W, MS, h, ...)", option="--frequency"
            ) from None
    table = read_table(data)
    frame = table.frame
    if len(frame) < MIN_ROWS:
        raise table.error(f"need at least {MIN_ROWS} rows to score, found {len(frame)}")
    series = list(series)
    for name in series:
        if name not in frame.columns:
            raise ConfigError(f"no column {name!r} in {table.source}", option="--series")
    if label is not None and label not in frame.columns:
        raise table.error(f"label column {label!r} is not in the data", column=label)
    if label is not None and label in (time, *series):
        raise ConfigError(f"{label!r} is the time or a series column", option="--label")
    times = win.parse_times(table, time)  # a value that does not parse: its line named
    keys = series_keys(frame, series)
    win.check_unique(table, times, pd.Series(keys, index=frame.index), time)
    taken = [time, *series, *([label] if label is not None else [])]
    value = _value_column(table, target, taken)
    values = win.target_values(table, value)
    positive = anomaly_class(table, label) if label is not None else None
    frequency = frequency or win.infer_frequency(
        times, pd.Series(keys, index=frame.index).map(str), table.source
    )
    spec = win.Spec(
        target=value, time=time, series=series, frequency=frequency, horizon=1, lookback=0
    )
    panel = win.read_panel(table, spec)
    longest = panel.report["longest"]
    if longest < 2 * MIN_HALF:
        raise DataError(
            f"the longest series has {longest} steps; scoring a series by out-of-sample "
            f"forecasts needs at least {2 * MIN_HALF} (two halves, each forecasting the other)",
            file=table.source,
            column=value,
        )
    spec.lookback = int(min(max(spec.season + EXTRA_LOOKBACK, 8), longest // 2 - MIN_HALF // 2))
    return SeriesRequest(
        table,
        spec,
        panel,
        keys,
        times,
        values,
        label,
        positive,
        contamination,
        threshold,
        settings or res.Settings(),
    )


def cross_fit(request: SeriesRequest, progress=None) -> tuple[SeriesDetector, dict]:
    """The two fold networks (module doc of :mod:`deepstrata.forecast.residuals`)."""
    panel, spec, settings = request.panel, request.spec, request.settings
    lengths = [len(s.values) for s in panel.series]
    middle = [n // 2 for n in lengths]
    networks, architecture, facts = {}, {}, {}
    for name, starts, ends in (
        ("early", [0] * len(lengths), middle),
        ("late", middle, lengths),
    ):
        if progress is not None:
            progress.note(
                f"{name} forecaster: steps {'before' if name == 'early' else 'from'} "
                "the middle of every series"
            )
        part = res.cut(panel, starts, ends)
        networks[name], architecture, facts[name] = res.train_one_step(
            part, spec, settings, progress=progress
        )
    folds = [
        {
            "key": list(s.key),
            "split": s.times[m].isoformat(),
            "end": s.times[-1].isoformat(),
        }
        for s, m in zip(panel.series, middle, strict=True)
    ]
    return SeriesDetector(spec, architecture, networks, folds=folds), facts


def calibrate(detector: SeriesDetector, panel: win.Panel) -> list[np.ndarray]:
    """Each series' interval-width median and two calibrations (median and 1.4826 x MAD
    of its out-of-sample ``z``): ``first`` without cleaning, which decides the outliers
    that cleaning replaces, then the final one with it (stored: predict scales by them).
    Returns each series' scores (what ``score_panel`` gives with the stored folds)."""
    out = []
    for series, fold in zip(panel.series, detector.folds, strict=True):
        plain = {**fold, "width": None, "first": None}
        _, z, width, raw = detector.residuals(series, plain)
        fold.update(width=width, first=_robust(z))
        origins, z, _, _ = detector.residuals(series, fold, raw=raw)
        fold.update(_robust(z))
        out.append(scores_of(len(series.values), origins, z, fold))
    return out


def _robust(z: np.ndarray) -> dict:
    center = float(np.median(z)) if len(z) else 0.0
    spread = MAD_TO_SD * float(np.median(np.abs(z - center))) if len(z) else 1.0
    return {"center": center, "spread": max(spread, SPREAD_FLOOR)}


def find_series_anomalies(
    request: SeriesRequest, *, seed: int = 0, max_epochs: int = 100, progress=None
) -> Found:
    """Cross-fit, calibrate and score every row; the forest beside it (module doc)."""
    request.settings.seed, request.settings.max_epochs = seed, max_epochs
    note = progress.note if progress is not None else (lambda line: None)
    panel, spec = request.panel, request.spec
    note(
        f"{len(panel.series)} series at frequency {spec.frequency}, lookback {spec.lookback}, "
        f"{panel.report['inserted_timestamps']} missing timestamps filled"
    )
    detector, facts = cross_fit(request, progress=progress)
    per_series = calibrate(detector, panel)
    index, step = locate(panel, request.keys, request.times, request.values)
    scores = row_scores(per_series, index, step)
    forest = row_scores(forest_scores(panel, spec, seed=seed), index, step)
    scored = ~np.isnan(scores)
    if request.threshold is not None:
        threshold, rule = float(request.threshold), "given (--threshold)"
    else:
        threshold = float(np.quantile(scores[scored], 1 - request.contamination))
        rule = f"the {1 - request.contamination:.4g} quantile of the scored rows' scores"
    detector.threshold = threshold
    flagged = scored & (np.nan_to_num(scores, nan=-np.inf) >= threshold)
    metrics = {
        "detector": "series",
        "rows": len(scores),
        "scored_rows": int(scored.sum()),
        "series": len(panel.series),
        "data": panel.report,
        "spec": {"target": spec.target, "frequency": spec.frequency, "lookback": spec.lookback},
        "threshold": {"value": threshold, "rule": rule, "contamination": request.contamination},
        "flagged": int(flagged.sum()),
        "scores": distribution(scores[scored]),
        "training": facts,
        "cross_fit": "two folds in time: each half of every series scored by the network "
        "fitted on the other half, from the values before each step",
    }
    if request.label is not None:
        ranked = np.where(scored, scores, -np.inf)  # unscored rows rank last
        ranked = np.nan_to_num(ranked, neginf=np.nanmin(scores) - 1.0)
        label = label_metrics(request, ranked, np.nan_to_num(forest), flagged)
        label["forecaster"] = label.pop("autoencoder")
        metrics["label"] = label
    table = pd.DataFrame({name: request.table.frame[name] for name in [*spec.series, spec.time]})
    return Found(detector, scores, forest, flagged, metrics, columns=table)


def lag_features(values: np.ndarray, spec: win.Spec) -> np.ndarray:
    """``(T, 4)`` what the forest reads at each step, in the series' robust units (1.4826 x
    the MAD of its one-step changes): the change from the step before, the distance from
    the mean of the lookback before it, the change from a season before, and the
    lookback's standard deviation. Steps without enough past read zeros."""
    y = pd.Series(values)
    changes = y.diff()
    scale = MAD_TO_SD * float((changes - changes.median()).abs().median()) or 1.0
    before = y.shift(1).rolling(spec.lookback, min_periods=1)
    season = spec.season if 1 < spec.season < len(values) else 1
    columns = [
        changes,
        y - before.mean(),
        y - y.shift(season),
        before.std(),
    ]
    return (pd.concat(columns, axis=1).fillna(0.0).to_numpy() / scale).astype(np.float32)


def forest_scores(panel: win.Panel, spec: win.Spec, *, seed: int) -> list[np.ndarray]:
    """Per series, scikit-learn's IsolationForest score of every step (higher: more
    unusual), one forest over every series' lag features. It is fitted on the steps it
    scores: the classical baseline as it is used, not held to the forecaster's rule."""
    from sklearn.ensemble import IsolationForest

    features = [lag_features(s.values, spec) for s in panel.series]
    forest = IsolationForest(n_estimators=FOREST_TREES, random_state=seed, n_jobs=1)
    forest.fit(np.concatenate(features))
    return [-forest.score_samples(f) for f in features]
