"""Drift while serving: a sliding window of the latest records, ``GET /drift`` and gauges.

Each answered ``/predict`` request adds its records' values and predictions to a window of
the last :data:`WINDOW` rows (one ``deque`` per column: appending is all a request pays).
The statistics (:mod:`deepstrata.attack.drift`, against the training rows the bundle
kept) are worked out only when asked: by ``GET /drift`` (token-protected like every path
but the health probes) and by each scrape of ``/metrics``, which shows per column
``deepstrata_drift_psi``, ``deepstrata_drift_p_value`` and ``deepstrata_drift_detected``
(1 or 0), and ``deepstrata_drift_window_rows``.

Text, image and audio columns are watched through the vectors the server's own forward
pass makes: a forward hook on the first member's encoder of their kind takes each
column's slice of its output (the vectors ``fit`` kept 200 rows of, see
:mod:`deepstrata.model.reference`), projects it to 16 dimensions by the column's own
matrix and appends it to the window; no second pass, no files kept. Only the batcher's
passes are watched (not the warm-up's, nor the perturbed rows ``/explain`` runs), and
only once the pass returned (a pretrained extractor under ``--strategy features`` embeds
identical rows of one batch once: they are counted once). Their test, the MMD with a permutation p-value
(:func:`~deepstrata.attack.drift.projected_drift`) on a seeded sample of up to
:data:`EMBED_TESTED` of the window's rows, is kept until the window changes, so that
scrapes between requests cost nothing. A column the window cannot watch (a bundle whose
reference keeps no vectors of it, the ONNX backend, which runs no torch encoder) is
listed under ``not_watched`` with the reason.
"""

from __future__ import annotations

import json
import threading
from collections import deque

import numpy as np
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from deepstrata.attack.drift import (
    ALPHA,
    PERMUTATIONS,
    PSI_THRESHOLD,
    categorical_drift,
    numeric_drift,
    prediction_shift,
    projected_drift,
)
from deepstrata.kinds import group_by_kind
from deepstrata.model.reference import (
    EMBED_ROWS,
    PREDICTION,
    REFERENCE,
    category_values,
    encoders_of,
    numeric_values,
    projection,
    statistic_of,
)

WINDOW = 1000  # rows kept: the statistics see the latest this many
MIN_ROWS = 30  # fewer rows in the window: no statistics yet (PSI on a handful is noise)
# Window rows an embedding column's MMD takes (a seeded sample), as many as the reference
# keeps and `deepstrata drift` tests: the kernel grows with the square of the rows.
EMBED_TESTED = EMBED_ROWS


class DriftWindow:
    """The last ``size`` rows' values per monitored column, and their predictions.

    ``inputs`` (``{column: kind}``, the model's inputs): text, image and audio columns
    among them are watched once :meth:`watch` found their encoder (else listed in
    ``not_watched`` with the reason)."""

    def __init__(
        self, reference: dict, *, size: int = WINDOW, inputs: dict[str, str] | None = None
    ) -> None:
        self.reference = reference
        kept = reference["columns"]
        self.columns = {
            name: deque(maxlen=size)
            for name, entry in kept.items()
            if entry["statistic"] != "embedding"
        }
        self.predictions: deque = deque(maxlen=size)
        self.seen = 0  # rows observed since the start
        self.size = size
        self.inputs = inputs if inputs is not None else {n: e["kind"] for n, e in kept.items()}
        self.vectors: dict[str, deque] = {}  # watched columns: their rows' projected vectors
        self.not_watched: list[dict] = [
            {"column": name, "kind": kind, "reason": _unkept(kept.get(name))}
            for name, kind in self.inputs.items()
            if statistic_of(kind) == "embedding" and _unkept(kept.get(name))
        ]
        self._taps: list[tuple] = []  # (encoder, [(slice index, column, width, matrix)])
        self._hooks: list = []
        self._added: dict[str, int] = {}  # vectors appended per column (the window's state)
        self._tested: dict[str, tuple] = {}  # column: (state, result) of its last MMD
        self._lock = threading.Lock()  # the hook appends in the model's worker thread
        self._local = threading.local()  # .pending: what the current pass captured

    @classmethod
    def of(cls, model, *, size: int = WINDOW) -> DriftWindow | None:
        """The window of a loaded model, or None for a bundle fitted before drift checks."""
        kept = model.artifacts.get(REFERENCE)
        if kept is None:
            return None
        inputs = {feature.name: feature.kind for feature in model.schema.inputs}
        window = cls(json.loads(kept), size=size, inputs=inputs)
        window.watch(model)
        return window

    def watch(self, model) -> None:
        """Plan the taps on ``model``'s first member's encoders (the vectors the reference
        was taken from); :meth:`attach` hooks them on."""
        wanted = {
            name
            for name, kind in self.inputs.items()
            if statistic_of(kind) == "embedding"
            and name not in {n["column"] for n in self.not_watched}
        }
        if not wanted:
            return
        member = model.members[0]
        encoders = encoders_of(member)
        for kind, names in group_by_kind(member.preprocessors).items():
            watched = [name for name in names if name in wanted]
            if not watched:
                continue
            encoder = encoders[kind] if encoders is not None and kind in encoders else None
            if encoder is None:
                self._refuse(watched, "the ONNX backend runs no torch encoder to take vectors from")
                continue
            width = int(getattr(encoder, "out_dim", 0)) // len(names)
            taps = []
            for name in watched:
                entry = self.reference["columns"][name]
                if width != entry["width"]:
                    self._refuse(
                        [name], f"its encoder gives {width}-wide vectors, the reference "
                        f"kept {entry['width']}-wide ones"
                    )  # fmt: skip
                    continue
                matrix = projection(entry["width"], entry["seed"])
                taps.append((names.index(name), name, width, matrix))
                self.vectors[name] = deque(maxlen=self.size)
                self._added[name] = 0
            if taps:
                self._taps.append((encoder, taps))

    def _refuse(self, names: list[str], reason: str) -> None:
        self.not_watched += [{"column": n, "kind": self.inputs[n], "reason": reason} for n in names]

    def attach(self) -> None:
        """Hook the taps on their encoders (while the server runs; see :meth:`detach`)."""
        self.detach()
        for encoder, taps in self._taps:
            hook = self._hook(taps)
            self._hooks.append(encoder.register_forward_hook(hook))

    def detach(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    def _hook(self, taps: list[tuple]):
        def captured(module, args, output) -> None:
            pending = getattr(self._local, "pending", None)
            if pending is None:  # not a pass of the batcher (warm-up, /explain)
                return
            encoded = output.detach().float().cpu().numpy()  # (rows, columns * width)
            for index, name, width, matrix in taps:
                # as the reference: float64 before the projection
                vectors = encoded[:, index * width : (index + 1) * width].astype(np.float64)
                pending.append((name, vectors @ matrix))

        return captured

    def watching(self, run):
        """``run`` (the batcher's forward pass) with the taps taking its rows' vectors into
        the window once it returns (a failed pass adds nothing: its requests are retried
        one by one, and each is then taken once)."""
        if not self._taps:
            return run

        def run_watched(rows):
            self._local.pending = []
            try:
                outputs = run(rows)
                taken = self._local.pending
            finally:
                self._local.pending = None
            with self._lock:
                for name, vectors in taken:
                    self.vectors[name].extend(vectors)
                    self._added[name] += len(vectors)
            return outputs

        return run_watched

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
            "not_watched": self.not_watched,
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
        columns += [self._embedding(name, alpha) for name in self.vectors]
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

    def _embedding(self, name: str, alpha: float) -> dict:
        """A watched column's MMD on up to EMBED_TESTED of the window's vectors, computed
        once per window state (a scrape between two requests reuses it)."""
        with self._lock:
            state = (self._added[name], alpha)
            vectors = list(self.vectors[name])
        last = self._tested.get(name)
        if last is not None and last[0] == state:
            return last[1]
        entry = self.reference["columns"][name]
        head = {"column": name, "kind": entry["kind"], "rows": min(len(vectors), EMBED_TESTED)}
        if len(vectors) < MIN_ROWS:  # (rows whose pass ran but whose request failed after)
            result = {**head, "test": "mmd", "statistic": float("nan"), "p_value": float("nan"),
                      "psi": None, "mean_shift": float("nan"), "drifted": False}  # fmt: skip
        else:
            rng = np.random.default_rng(0)
            picked = np.sort(rng.permutation(len(vectors))[:EMBED_TESTED])
            sample = np.stack([vectors[i] for i in picked])
            tested = projected_drift(entry, sample, alpha=alpha, seed=0, permutations=PERMUTATIONS)
            result = {**head, **tested}
        self._tested[name] = (state, result)
        return result


def _unkept(entry: dict | None) -> str | None:
    """Why a text, image or audio column's reference entry cannot be compared (None: it can)."""
    if entry is None or entry.get("statistic") != "embedding" or not entry.get("sample"):
        return (
            f"the bundle's {REFERENCE} keeps no encoder vectors of it; refit with this "
            "release to watch it"
        )
    return None


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
            if entry["psi"] is not None:  # (text, image, audio: no bins, no PSI)
                families[1].add_metric(label, entry["psi"])
            families[2].add_metric(label, _finite(entry["p_value"]))
            families[3].add_metric(label, 1.0 if entry["drifted"] else 0.0)
            families[4].add_metric([*label, entry["test"]], _finite(entry["statistic"]))
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
                "p-value of each column's test (KS for numbers, chi-square for categories, "
                "MMD with a permutation p-value for text, image and audio).",
                labels=["column"],
            ),
            GaugeMetricFamily(
                "deepstrata_drift_detected",
                "1 where a column drifted (test below alpha and PSI from the threshold).",
                labels=["column"],
            ),
            GaugeMetricFamily(
                "deepstrata_drift_statistic",
                "Each column's test statistic: KS distance, chi-square, or squared MMD.",
                labels=["column", "test"],
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
