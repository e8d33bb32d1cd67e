"""What the training data looked like: ``drift_reference.json``, kept in the bundle.

``fit`` summarises every input column of the rows it read, and the distribution of its
held-out predictions, so that ``deepstrata drift`` and ``serve``'s ``/drift`` can say
later which inputs moved (:mod:`deepstrata.attack.drift`). Plain JSON, no pickle:

- ``numeric`` (number and datetime columns): quantile bin edges with the training rows'
  share in each bin (for the population stability index), the share missing, and a seeded
  sample of up to :data:`SAMPLE` values (for the two-sample Kolmogorov–Smirnov test);
- ``categorical`` (category and boolean columns): the count of each value (the
  :data:`MAX_CATEGORIES` commonest; the rest pooled as ``<other>``, missing as
  ``<missing>``) for chi-square and PSI;
- ``embedding`` (text, image and audio columns): the model's own encoder's vector of a
  seeded sample of up to :data:`EMBED_ROWS` rows, projected to :data:`PROJECTED`
  dimensions by a seeded Gaussian matrix (Johnson–Lindenstrauss: distances kept up to
  a small factor; a 1280-wide EfficientNet vector of 200 rows would be megabytes of
  JSON), for a kernel two-sample test (MMD) and a mean-shift distance;
- ``prediction``: the held-out predictions of the fit (``validation_predictions.csv``:
  out of fold with ``--folds``) as a categorical (classes, label sets) or numeric
  (regression) column. Held-out rather than training-row predictions: a network's
  predictions on its own training rows are more confident than on any new rows, so they
  would show a shift where there is none.

Values are put in one form by :func:`category_values` and :func:`numeric_values` both
here and when new rows are checked, so that a CSV's ``1``, a JSON request's ``1`` and
a column read as floats (``1.0``) are one category.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import torch

from deepstrata.kinds import KINDS, group_by_kind

REFERENCE = "drift_reference.json"
VERSION = 1
SAMPLE = 1000  # numeric values kept per column for the KS test
EMBED_ROWS = 200  # rows whose embeddings are kept per text/image/audio column
PROJECTED = 16  # the width embeddings are projected to
BINS = 10  # quantile bins of a numeric column (PSI)
MAX_CATEGORIES = 50
MISSING, OTHER = "<missing>", "<other>"
PREDICTION = "prediction"


def statistic_of(kind: str) -> str:
    """Which summary a column of ``kind`` gets: numeric, categorical or embedding."""
    if kind in ("number", "datetime"):
        return "numeric"
    if KINDS[kind].files or KINDS[kind].show == "text":
        return "embedding"
    return "categorical"


def numeric_values(values, kind: str = "number") -> np.ndarray:
    """A column's values as float64, NaN where missing (datetimes in seconds since 1970)."""
    series = pd.Series(values, dtype=object if kind == "datetime" else None)
    if kind == "datetime":
        moments = pd.to_datetime(series, errors="coerce", utc=True, format="mixed")
        # As a duration: pandas 3 keeps the resolution it parsed (s, ms, us or ns).
        elapsed = (moments - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
        return elapsed.to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)


def category_values(values, kind: str = "category") -> np.ndarray:
    """A column's values as text, one spelling per value (``1``, ``1.0`` -> ``"1"``;
    ``True`` -> ``"true"``; for a boolean column ``yes``/``1``/``t`` -> ``"true"`` too, as
    its preprocessor reads them), ``<missing>`` where missing."""
    if kind == "boolean":
        return _boolean_values(values)

    def spelled(value) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
            return MISSING
        if isinstance(value, bool | np.bool_):
            return "true" if value else "false"
        if isinstance(value, float | np.floating) and float(value).is_integer():
            return str(int(value))
        return str(value)

    array = np.empty(len(values), dtype=object)
    array[:] = list(values)  # (lists of labels stay one cell each)
    missing = pd.isna(array) if array.size else np.zeros(0, dtype=bool)
    if pd.api.types.infer_dtype(array[~missing], skipna=False) in ("string", "empty"):
        array[missing] = MISSING  # text only (the usual case): no call per value
        return array
    return np.array([spelled(value) for value in values], dtype=object)


def _boolean_values(values) -> np.ndarray:
    from deepstrata.values import FALSE_WORDS, TRUE_WORDS

    text = category_values(values)
    lowered = np.array([word.strip().lower() for word in text], dtype=object)
    true = np.isin(lowered, list(TRUE_WORDS))
    false = np.isin(lowered, list(FALSE_WORDS))
    return np.where(true, "true", np.where(false, "false", text)).astype(object)


def numeric_reference(values: np.ndarray, rng: np.random.Generator) -> dict:
    present = values[~np.isnan(values)]
    if len(present) == 0:
        return {"statistic": "numeric", "edges": [], "shares": [], "missing": 1.0, "sample": []}
    edges = np.unique(np.quantile(present, np.linspace(0, 1, BINS + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    sample = present if len(present) <= SAMPLE else rng.choice(present, SAMPLE, replace=False)
    return {
        "statistic": "numeric",
        "edges": edges.tolist(),
        "shares": (counts / len(values)).tolist(),  # of every row, missing ones included
        "missing": float(1 - len(present) / len(values)),
        "sample": np.sort(sample).tolist(),
        "rows": len(values),
    }


def categorical_reference(values: np.ndarray) -> dict:
    names, counts = np.unique(values, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    kept = {str(names[i]): int(counts[i]) for i in order[:MAX_CATEGORIES]}
    rest = int(counts[order[MAX_CATEGORIES:]].sum())
    if rest:
        kept[OTHER] = kept.get(OTHER, 0) + rest
    return {"statistic": "categorical", "counts": kept, "rows": len(values)}


def projection(width: int, seed: int) -> np.ndarray:
    """The fixed ``(width, PROJECTED)`` Gaussian matrix of a column (from its seed)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((width, PROJECTED)) / np.sqrt(PROJECTED)


def column_embeddings(member, frame: pd.DataFrame, table, names: list[str]) -> dict:
    """``{name: (rows, D) float64}``: the vectors ``member``'s own encoder gives each of
    ``names`` (text, image, audio columns) for the rows of ``frame``. A kind's encoder
    puts its columns' vectors side by side, equally wide, in
    :func:`~deepstrata.kinds.group_by_kind` order: each column's slice is its own."""
    from deepstrata.preprocess.frame import transform_frame

    encoders = encoders_of(member)
    groups = group_by_kind(member.preprocessors)
    vectors: dict[str, np.ndarray] = {}
    for kind, columns in groups.items():
        if not set(columns) & set(names):
            continue
        pres = {name: member.preprocessors[name] for name in columns}
        block = transform_frame(pres, frame, table)[kind]
        with torch.inference_mode():
            encoded = torch.cat(
                [encoders[kind](block[i : i + 64]).float() for i in range(0, len(block), 64)]
            ).numpy()  # (rows, columns * D)
        width = encoded.shape[1] // len(columns)
        for index, name in enumerate(columns):
            if name in names:
                vectors[name] = encoded[:, index * width : (index + 1) * width].astype(np.float64)
    return vectors


def encoders_of(member):
    """The ``{kind: encoder}`` modules of a member (its network's, or its extractor's under
    ``--strategy features``); None where there are none to run (the ONNX backend swaps
    the whole network for a session)."""
    holder = member.network if hasattr(member, "network") else member.extractor
    return getattr(holder, "encoders", None)


def embedding_reference(vectors: np.ndarray, seed: int) -> dict:
    projected = vectors @ projection(vectors.shape[1], seed)  # (rows, PROJECTED)
    distances = np.sqrt(((projected[:, None, :] - projected[None, :, :]) ** 2).sum(-1))
    positive = distances[np.triu_indices(len(projected), 1)]
    scale = float(np.median(positive)) if len(positive) else 1.0
    return {
        "statistic": "embedding",
        "width": int(vectors.shape[1]),
        "seed": int(seed),
        "bandwidth": scale if scale > 0 else 1.0,  # the RBF kernel's (median heuristic)
        "sample": np.round(projected, 6).tolist(),
        "rows": len(vectors),
    }


def build_reference(prepared, model) -> dict:
    """``drift_reference.json``'s content for ``model`` fit on ``prepared``."""
    frame, seed = prepared.frame, int(prepared.cfg.seed)
    rng = np.random.default_rng(seed)
    columns: dict[str, dict] = {}
    embedded = [f.name for f in prepared.schema.inputs if statistic_of(f.kind) == "embedding"]
    if embedded:
        picked = np.sort(rng.permutation(len(frame))[:EMBED_ROWS])
        sample = frame.iloc[picked]
        vectors = column_embeddings(model.members[0], sample, prepared.table, embedded)
    for position, feature in enumerate(prepared.schema.inputs):
        statistic = statistic_of(feature.kind)
        values = frame[feature.name].to_numpy()
        if statistic == "numeric":
            entry = numeric_reference(numeric_values(values, feature.kind), rng)
        elif statistic == "categorical":
            entry = categorical_reference(category_values(values, feature.kind))
        else:
            entry = embedding_reference(vectors[feature.name], seed + 1 + position)
        columns[feature.name] = {"kind": feature.kind, **entry}
    return {
        "version": VERSION,
        "rows": len(frame),
        "columns": columns,
        PREDICTION: prediction_reference(prepared, model),
    }


def prediction_reference(prepared, model) -> dict | None:
    """The held-out predictions' distribution (from ``validation_predictions.csv``)."""
    from deepstrata.report.render import PREDICTIONS

    held_out = model.artifacts.get(PREDICTIONS)
    if held_out is None:
        return None
    predictions = pd.read_csv(io.BytesIO(held_out), usecols=["_prediction"])["_prediction"]
    if prepared.task.classifier:
        return categorical_reference(category_values(predictions.to_numpy()))
    values = predictions.to_numpy(dtype=np.float64)
    return numeric_reference(values, np.random.default_rng(int(prepared.cfg.seed)))


def reference_bytes(prepared, model) -> bytes:
    """:func:`build_reference` as the bundle file's bytes."""
    return (json.dumps(build_reference(prepared, model), allow_nan=False) + "\n").encode()
