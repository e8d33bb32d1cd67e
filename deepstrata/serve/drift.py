"""Drift while serving: a sliding window of the latest records, ``GET /drift`` and gauges.

Each answered ``/predict`` request adds its records' values and predictions to a window of
the last :data:`WINDOW` rows (one ``deque`` per column: appending is all a request pays).
The statistics (:mod:`deepstrata.attack.drift`, against the training rows the bundle
kept) are worked out only when asked: by ``GET /drift`` (token-protected like every path
but the health probes) and by each scrape of ``/metrics``, which shows per column
``deepstrata_drift_psi``, ``deepstrata_drift_p_value`` and ``deepstrata_drift_detected``
(1 or 0), and ``deepstrata_drift_window_rows``.

Text, image and audio columns are left out here: their test needs the model's encoder
over the window's files, a second forward pass the server does not pay per request;
``deepstrata drift BUNDLE DATA`` checks them on logged rows.
"""

from __future__ import annotations

import json
from collections import deque

import numpy as np
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from deepstrata.attack.drift import (
    ALPHA,
    PSI_THRESHOLD,
    categorical_drift,
    numeric_drift,
    prediction_shift,
)
from deepstrata.model.reference import (
    PREDICTION,
    REFERENCE,
    category_values,
    numeric_values,
)

WINDOW = 1000  # rows kept: the statistics see the latest this many
MIN_ROWS = 30  # fewer rows in the window: no statistics yet (PSI on a handful is noise)


class DriftWindow:
    """The last ``size`` rows' values per monitored column, and their predictions."""

    def __init__(self, reference: dict, *, size: int = WINDOW) -> None:
        self.reference = reference
        kept = reference["columns"]
        self.columns = {
            name: deque(maxlen=size)
            for name, entry in kept.items()
            if entry["statistic"] != "embedding"
        }
        self.left_out = [name for name in kept if name not in self.columns]
        self.predictions: deque = deque(maxlen=size)
        self.seen = 0  # rows observed since the start

    @classmethod
    def of(cls, model, *, size: int = WINDOW) -> DriftWindow | None:
        """The window of a loaded model, or None for a bundle fitted before drift checks."""
        kept = model.artifacts.get(REFERENCE)
        return None if kept is None else cls(json.loads(kept), size=size)

    def observe(self, columns: dict[str, list], predictions: list) -> None:
        """Add one request's rows (``{column: values}``) and their predictions."""
        count = len(predictions)
        for name, window in self.columns.items():
            window.extend(columns.get(name) or [None] * count)
        self.predictions.extend(
            "|".join(map(str, p)) if isinstance(p, list) else p for p in predictions
        )
        self.seen += count

    def report(self, *, alpha: float = ALPHA, psi_threshold: float = PSI_THRESHOLD) -> dict:
        """The window's statistics per column and for the predictions (as ``drift`` gives)."""
        rows = len(self.predictions)
        answer: dict = {
            "window": rows,
            "window_size": self.predictions.maxlen,
            "seen": self.seen,
            "alpha": alpha,
            "psi_threshold": psi_threshold,
            "left_out": self.left_out,
        }
        if rows < MIN_ROWS:
            answer.update(drift=False, drifted=[], columns=[], prediction=None)
            answer["note"] = f"{rows} rows so far; statistics from {MIN_ROWS}"
            return answer
        columns = []
        for name, window in self.columns.items():
            entry = self.reference["columns"][name]
            values = list(window)
            if entry["statistic"] == "numeric":
                numbers = numeric_values(values, entry["kind"])
                result = numeric_drift(entry, numbers, alpha=alpha, threshold=psi_threshold)
            else:
                texts = category_values(values, entry["kind"])
                result = categorical_drift(entry, texts, alpha=alpha, threshold=psi_threshold)
            columns.append({"column": name, "kind": entry["kind"], **result})
        kept = self.reference.get(PREDICTION)
        prediction = None
        if kept is not None:
            cells = list(self.predictions)
            prediction = prediction_shift(kept, cells, alpha=alpha, threshold=psi_threshold)
        drifted = [c["column"] for c in columns if c["drifted"]]
        answer.update(
            drift=bool(drifted) or bool(prediction and prediction["drifted"]),
            drifted=drifted,
            columns=columns,
            prediction=prediction,
        )
        return answer


class DriftCollector:
    """Prometheus gauges of a :class:`DriftWindow`, computed at each scrape."""

    def __init__(self, window: DriftWindow) -> None:
        self.window = window

    def describe(self):  # the registry then need not call collect() to learn the names
        return self._families()

    def collect(self):
        families = self._families()
        report = self.window.report()
        families[0].add_metric([], report["window"])
        for entry in [*report["columns"], *filter(None, [report["prediction"]])]:
            label = [entry["column"]]
            families[1].add_metric(label, entry["psi"])
            families[2].add_metric(label, _finite(entry["p_value"]))
            families[3].add_metric(label, 1.0 if entry["drifted"] else 0.0)
        return families

    @staticmethod
    def _families() -> list:
        from prometheus_client.core import GaugeMetricFamily

        return [
            GaugeMetricFamily(
                "deepstrata_drift_window_rows", "Rows in the drift window (latest requests)."
            ),
            GaugeMetricFamily(
                "deepstrata_drift_psi",
                "Population stability index of each input column (and 'prediction') in "
                "the window against the training rows.",
                labels=["column"],
            ),
            GaugeMetricFamily(
                "deepstrata_drift_p_value",
                "p-value of each column's test (KS for numbers, chi-square for categories).",
                labels=["column"],
            ),
            GaugeMetricFamily(
                "deepstrata_drift_detected",
                "1 where a column drifted (test below alpha and PSI from the threshold).",
                labels=["column"],
            ),
        ]


def _finite(value: float) -> float:
    return value if np.isfinite(value) else float("nan")


def add_drift_route(app: FastAPI, context) -> None:
    """``GET /drift``: the window's report; 404 for a bundle fitted before drift checks."""
    from deepstrata.serve.errors import ApiError

    @app.get(
        "/drift",
        summary="Drift of the latest requests' inputs and predictions from the training rows.",
    )
    async def drift() -> JSONResponse:
        if context.drift is None:
            raise ApiError(
                "not_found",
                f"this bundle keeps no {REFERENCE}: refit it with this deepstrata release "
                "to check drift",
            )
        return JSONResponse(_plain(context.drift.report()))


def _plain(value):
    """JSON's values: NaN (no values to test) as null, numpy scalars as Python's."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
