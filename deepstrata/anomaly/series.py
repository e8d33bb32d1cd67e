"""The series anomaly detector: each step scored by its out-of-sample one-step residual.

Two one-step TiDE forecasters cross-fitted in time (:mod:`deepstrata.forecast.residuals`):
``early`` learnt the first half of every series, ``late`` the second half. A step of a
series the detector was fitted on is scored by the network that never saw it (before the
series' ``split`` time: ``late``; from it to the series' ``end``: ``early``); a step after
the fitted history, or of a series never seen, by ``late`` (the more recent one). So
``predict`` on the fitted data gives back the run's scores, and on new history scores its
rows the same way.

The values a step's window reads are cleaned first, walking forward: an earlier step that
scored as an outlier (over :data:`CLEAN` on a first calibration without cleaning) is
replaced by its median forecast, so that a spike does not make the next ``lookback``
forecasts wrong and flagged too. A step's residual in interval units (``z``) becomes its
score after the series' own calibration: ``|z - center| / spread``, the median and 1.4826 x MAD of the series' ``z``
over the fitted history (a series never seen takes the fitted series' medians), so one
threshold serves every series. The first ``lookback`` steps of a series (their window
would reach before its start), and rows without a value, are not scored: their score is
empty (NaN) and they are never flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from deepstrata.forecast import residuals as res
from deepstrata.forecast import windows as win

MAD_TO_SD = 1.4826
SPREAD_FLOOR = 1e-6
# Cleaning the history later windows read: a step scoring over CLEAN robust sds on the
# series' first calibration is an outlier; its median forecast stands in for it, so one
# spike does not throw the next ``lookback`` forecasts off (and flag them). Two outliers
# in a row (MAX_RUN + 1) are a level shift instead: the history moves to the new level.
# (Measured on co2 with a shift injected: without the move, a one-step network read the
# windows straddling the shift as nothing it had learnt and flagged 8 steps after it.)
CLEAN = 4.0
MAX_RUN = 1
FOLDS = ("early", "late")


def scores_of(length: int, origins: np.ndarray, z: np.ndarray, fold: dict) -> np.ndarray:
    """``(length,)`` scores of a series' steps: ``|z - center| / spread`` at ``origins``,
    NaN elsewhere."""
    scores = np.full(length, np.nan)
    scores[origins] = np.abs(z - fold["center"]) / fold["spread"]
    return scores


def series_keys(frame: pd.DataFrame, series: list[str]) -> list[tuple]:
    """Each row's series key: the ``series`` columns' values as text (``()`` for one)."""
    if not series:
        return [()] * len(frame)
    return list(zip(*(frame[c].astype(str) for c in series), strict=True))


@dataclass
class SeriesDetector:
    """Spec, the two fold networks, per-series fold times and calibration, threshold."""

    spec: win.Spec
    architecture: dict
    networks: dict  # "early" / "late" -> TiDE
    threshold: float | None = None
    # per series: key (list), split and end (ISO times), center, spread, width
    folds: list[dict] = field(default_factory=list)

    def _fold(self, key: tuple) -> dict:
        """The fitted series' fold, or for a series never seen: the later network for
        every step and the fitted series' medians (its own interval widths' floor)."""
        for fold in self.folds:
            if tuple(fold["key"]) == tuple(key):
                return fold
        return {"key": list(key), "split": None, "end": None, "width": None, **self.pooled()}

    def pooled(self) -> dict:
        """The calibrations a series never seen takes: the fitted series' medians."""

        def median(read):
            return float(np.median([read(f) for f in self.folds]))

        return {
            "center": median(lambda f: f["center"]),
            "spread": median(lambda f: f["spread"]),
            "first": {
                "center": median(lambda f: f["first"]["center"]),
                "spread": median(lambda f: f["first"]["spread"]),
            },
        }

    def _forecast(self, series: win.Series, origins: np.ndarray, late: np.ndarray):
        forecast = np.zeros((len(origins), len(res.QUANTILES)))
        for name, chosen in (("late", late), ("early", ~late)):
            if chosen.any():
                forecast[chosen] = res.forecasts(
                    self.networks[name], self.spec, series, origins[chosen]
                )
        return forecast

    def residuals(self, series: win.Series, fold: dict, *, raw: np.ndarray | None = None):
        """(origins, z, width median): each scored step's residual in interval units,
        forecast by the network that was not fitted on it, from earlier values cleaned of
        outliers when the fold has its first calibration (module doc). The interval floor
        is the fold's stored ``width`` when it has one, else the series' own. ``raw``: the
        forecasts from the uncleaned values, when already made (they are returned last)."""
        origins = np.arange(self.spec.lookback, len(series.values))
        if fold["split"] is None:
            late = np.ones(len(origins), dtype=bool)
        else:
            times = series.times[origins]
            split, end = pd.Timestamp(fold["split"]), pd.Timestamp(fold["end"])
            late = np.asarray((times < split) | (times > end))
        raw = self._forecast(series, origins, late) if raw is None else raw
        forecast = raw.copy()
        actual = series.values[origins]
        _, width = res.interval_units(actual, forecast, fold.get("width"))
        if fold.get("first") is not None and len(origins):
            forecast = self._cleaned(series, origins, late, forecast, width, fold["first"])
        z, _ = res.interval_units(actual, forecast, width)
        return origins, z, width, raw

    def _cleaned(self, series, origins, late, forecast, width, first) -> np.ndarray:
        """The forecasts again, walking forward: a step scoring over :data:`CLEAN` on the
        first calibration is replaced, in the values later windows read, by its median
        forecast; after :data:`MAX_RUN` such steps in a row the next outlier means a new
        level: the run's values are read again and every earlier value moves by the
        level's change (their median residual), so that later windows see one level.
        Only forecasts after the deciding step are made again: a step's forecast reads
        only steps before it."""
        median = res.QUANTILES.index(0.5)
        values = series.values.copy()
        reading = replace(series, values=values)
        actual = series.values[origins]

        def scores(rows: slice) -> np.ndarray:
            z, _ = res.interval_units(actual[rows], forecast[rows], width)
            return np.abs(z - first["center"]) / first["spread"]

        current = scores(slice(None))
        step, last, run = -1, -2, 0
        while True:
            hits = np.flatnonzero(current[step + 1 :] > CLEAN)
            if not len(hits):
                return forecast
            step = step + 1 + int(hits[0])
            run = run + 1 if step == last + 1 else 1
            last = step
            if run > MAX_RUN + 1:
                continue
            if run == MAX_RUN + 1:  # a new level: the history before the run moves to it
                start = step - MAX_RUN
                shift = np.median(actual[start : step + 1] - forecast[start : step + 1, median])
                values[: origins[start]] += shift
                values[origins[start] : origins[step] + 1] = actual[start : step + 1]
            else:
                values[origins[step]] = forecast[step, median]
            later = slice(step + 1, min(step + 1 + self.spec.lookback, len(origins)))
            forecast[later] = self._forecast(reading, origins[later], late[later])
            current[later] = scores(later)

    def score_panel(self, panel: win.Panel) -> list[np.ndarray]:
        """Per series, a score for every step of its grid (NaN where none, module doc)."""
        out = []
        for series in panel.series:
            fold = self._fold(series.key)
            origins, z, _, _ = self.residuals(series, fold)
            out.append(scores_of(len(series.values), origins, z, fold))
        return out

    def read(self, table) -> tuple[win.Panel, np.ndarray, np.ndarray]:
        """(panel, each row's series index, each row's step in it; -1 where the row has no
        value) of ``table``: a bad time, a duplicate, a missing column named first."""
        from deepstrata.errors import ConfigError

        spec = self.spec
        for name in [spec.time, spec.target, *spec.series]:
            if name not in table.frame.columns:
                raise ConfigError(
                    f"no column {name!r} in {table.source}; the detector was fit with it",
                    option="DATA",
                )
        times = win.parse_times(table, spec.time)
        keys = series_keys(table.frame, spec.series)
        win.check_unique(table, times, pd.Series(keys, index=table.frame.index), spec.time)
        values = win.target_values(table, spec.target)
        panel = win.read_panel(table, spec)
        return (panel, *locate(panel, keys, times, values))

    def score_frame(self, table, *, keep: list[str] | tuple = ()) -> pd.DataFrame:
        """``keep`` columns, then row (1-based), the series columns, the time, score and
        flagged for every row of ``table``."""
        for name in keep:
            if name not in table.frame.columns:
                raise table.error(f"column {name!r} to keep is not in the data", column=name)
        panel, index, step = self.read(table)
        scores = row_scores(self.score_panel(panel), index, step)
        return rows_frame(table, self.spec, scores, scores >= self.threshold, keep=keep)

    # -- the bundle ------------------------------------------------------------------------
    def bundle_parts(self) -> tuple[dict, dict]:
        """(config entries, weights) of the bundle (``deepstrata.anomaly.bundle``)."""
        config = {
            "detector": "series",
            "spec": self.spec.to_dict(),
            "architecture": self.architecture,
            "quantiles": list(res.QUANTILES),
            "series": self.folds,
            "threshold": self.threshold,
        }
        weights = {
            f"{name}.{k}": v.detach().cpu().contiguous()
            for name in FOLDS
            for k, v in self.networks[name].state_dict().items()
        }
        return config, weights

    @classmethod
    def from_bundle(cls, config: dict, weights: dict) -> SeriesDetector:
        from deepstrata.forecast.network import build_network

        if list(config["quantiles"]) != list(res.QUANTILES):
            raise ValueError(f"quantiles {config['quantiles']} are not {list(res.QUANTILES)}")
        networks = {}
        for name in FOLDS:
            network = build_network(config["architecture"])
            prefix = f"{name}."
            network.load_state_dict(
                {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)},
                strict=True,
            )
            networks[name] = network.eval()
        if len(weights) != sum(len(n.state_dict()) for n in networks.values()):
            raise ValueError("weights.safetensors holds tensors the detector does not use")
        return cls(
            spec=win.Spec.from_dict(config["spec"]),
            architecture=config["architecture"],
            networks=networks,
            threshold=float(config["threshold"]),
            folds=list(config["series"]),
        )


def locate(panel: win.Panel, keys: list[tuple], times: pd.Series, values: np.ndarray):
    """Each row's (series index, step) in ``panel``; -1 for a row without a value."""
    grid = pd.concat(
        [
            pd.DataFrame(
                {
                    "key": [repr(tuple(series.key))] * len(series.times),
                    "time": series.times,
                    "index": number,
                    "step": np.arange(len(series.times)),
                }
            )
            for number, series in enumerate(panel.series)
        ]
        or [pd.DataFrame({"key": [], "time": [], "index": [], "step": []})]
    )
    rows = pd.DataFrame({"key": [repr(tuple(k)) for k in keys], "time": times.to_numpy()})
    found = rows.merge(grid, on=["key", "time"], how="left")  # keeps the rows' order
    index = found["index"].fillna(-1).to_numpy(int).copy()
    step = found["step"].fillna(-1).to_numpy(int).copy()
    missing = np.isnan(values)
    index[missing], step[missing] = -1, -1
    return index, step


def row_scores(per_series: list[np.ndarray], index: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Each row's score from its series' grid (NaN for a row without one)."""
    scores = np.full(len(index), np.nan)
    for row in np.flatnonzero(index >= 0):
        scores[row] = per_series[index[row]][step[row]]
    return scores


def rows_frame(table, spec: win.Spec, scores, flagged, *, keep=()) -> pd.DataFrame:
    """``keep`` columns, row (1-based), series columns, time, score and flagged."""
    frame = table.frame
    columns = {name: frame[name].to_numpy() for name in keep}
    columns["row"] = np.arange(1, len(scores) + 1)
    for name in [*spec.series, spec.time]:
        columns.setdefault(name, frame[name].to_numpy())
    columns["score"] = scores
    columns["flagged"] = np.nan_to_num(flagged, nan=False).astype(bool) & ~np.isnan(scores)
    return pd.DataFrame(columns)
