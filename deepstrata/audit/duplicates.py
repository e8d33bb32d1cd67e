"""Exact and near duplicates within a table, and leakage: test rows also in training.

Every group and pair found is listed (row numbers are 1-based data rows); the caller
shortens the lists for display.

Rows are compared on their inputs (every column but the target and the ignored ones), as
the schema reads them. **Exact**: every input value equal (a missing value equals a
missing value). **Near**: every category, boolean, text and file value equal and the
numbers (dates as days) within ``tolerance`` standard deviations on average: the distance
between the rows' standardised numbers is at most ``tolerance * sqrt(numbers)``. A
duplicate with another label is a *conflict*: one of the two labels is wrong, or the
inputs cannot tell them apart.

>>> import pandas as pd
>>> frame = pd.DataFrame({"x": [1.0, 1.0, 2.0, 5.0], "c": ["a", "a", "b", "b"], "y": [0, 1, 0, 1]})
>>> found = duplicates(frame, ["x", "c"], target="y")
>>> found["exact"]["rows"], found["exact"]["groups"][0]["rows"], found["exact"]["conflicting_groups"]
(1, [1, 2], 1)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

DEFAULT_TOLERANCE = 0.01  # standard deviations, on average over the numbers
APART = 1e6  # distance between two different non-numeric values: never "near"


def _numbers(column: pd.Series) -> pd.Series | None:
    """A column as numbers when it is one (dates as days), else None."""
    if ptypes.is_bool_dtype(column):
        return None
    if ptypes.is_numeric_dtype(column):
        return column.astype(float)
    if ptypes.is_datetime64_any_dtype(column):
        return column.astype("int64") / 8.64e13
    return None


def feature_matrix(
    train: pd.DataFrame, columns: list[str], other: pd.DataFrame | None = None
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """``(rows, columns)`` matrices of ``train`` (and ``other``) for near duplicates:
    numbers standardised on ``train`` (missing: a far-away value), every other column's
    values as codes ``APART`` apart. Returns the matrices and the count of numbers."""
    parts, extra, numeric = [], [], 0
    for name in columns:
        values = _numbers(train[name])
        if values is not None:
            numeric += 1
            center, scale = values.mean(), values.std()
            scale = scale if scale and np.isfinite(scale) else 1.0
            parts.append(((values - center) / scale).fillna(APART).to_numpy())
            if other is not None:
                extra.append(((_numbers(other[name]) - center) / scale).fillna(APART).to_numpy())
            continue
        text = train[name].astype("string").fillna("\0missing")
        both = (
            text
            if other is None
            else pd.concat([text, other[name].astype("string").fillna("\0missing")])
        )
        codes, _ = pd.factorize(both)
        parts.append(codes[: len(train)] * APART)
        if other is not None:
            extra.append(codes[len(train) :] * APART)
    matrix = np.column_stack(parts).astype(float) if parts else np.zeros((len(train), 0))
    others = np.column_stack(extra).astype(float) if other is not None and extra else None
    return matrix, others, numeric


def _keys(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """One hashable key per row from its input values (missing as a value of its own)."""
    return pd.util.hash_pandas_object(
        frame[columns].astype("string").fillna("\0missing"), index=False
    )


def exact_groups(frame: pd.DataFrame, columns: list[str], target: str | None) -> dict:
    """Groups of rows with equal inputs (1-based row numbers), conflicts counted."""
    keys = _keys(frame, columns)
    repeated = keys[keys.duplicated(keep=False)]
    groups = []
    for _, positions in repeated.groupby(repeated, sort=False).groups.items():
        rows = sorted(int(p) for p in positions)
        labels = [] if target is None else frame[target].iloc[rows].astype(str).unique().tolist()
        groups.append({"rows": [r + 1 for r in rows], "labels": sorted(labels)})
    conflicting = sum(len(g["labels"]) > 1 for g in groups)
    return {
        "rows": int(sum(len(g["rows"]) - 1 for g in groups)),  # rows beyond the first of each
        "groups_found": len(groups),
        "conflicting_groups": int(conflicting),
        "groups": groups,
    }


def near_pairs(
    matrix: np.ndarray, numeric: int, tolerance: float, query: np.ndarray | None = None
) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, distance)`` within the radius: within ``matrix`` (i < j) or, with
    ``query``, from a row of ``query`` (i) to a row of ``matrix`` (j)."""
    from sklearn.neighbors import NearestNeighbors

    if numeric == 0 or len(matrix) == 0:
        return []
    radius = tolerance * np.sqrt(numeric)
    index = NearestNeighbors(radius=radius).fit(matrix)
    distances, neighbours = index.radius_neighbors(matrix if query is None else query)
    pairs = []
    for i, (near, far) in enumerate(zip(neighbours, distances)):
        for j, distance in zip(near, far):
            if query is not None or i < j:
                pairs.append((i, int(j), float(distance)))
    return pairs


def duplicates(
    frame: pd.DataFrame,
    columns: list[str],
    *,
    target: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> dict:
    """Exact duplicate groups and near-duplicate pairs (not exact) within ``frame``."""
    exact = exact_groups(frame, columns, target)
    matrix, _, numeric = feature_matrix(frame, columns)
    keys = _keys(frame, columns).to_numpy()
    pairs = [(i, j, d) for i, j, d in near_pairs(matrix, numeric, tolerance) if keys[i] != keys[j]]
    return {
        "exact": exact,
        "near": {
            "tolerance": tolerance,
            "pairs_found": len(pairs),
            "rows": len({j for _, j, _ in pairs}),
            "pairs": [
                {"rows": [i + 1, j + 1], "distance": d, **_labels(frame, target, i, j)}
                for i, j, d in sorted(pairs, key=lambda p: p[2])
            ],
        },
    }


def _labels(frame: pd.DataFrame, target: str | None, i: int, j: int) -> dict:
    if target is None:
        return {}
    return {"labels": [str(frame[target].iloc[i]), str(frame[target].iloc[j])]}


def leakage(
    train: pd.DataFrame,
    test: pd.DataFrame,
    columns: list[str],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
) -> dict:
    """Test rows whose inputs equal (exact) or nearly equal (near) a training row's."""
    train_keys = set(_keys(train, columns).to_numpy())
    test_keys = _keys(test, columns).to_numpy()
    exact = [i for i, key in enumerate(test_keys) if key in train_keys]
    matrix, query, numeric = feature_matrix(train, columns, test)
    seen = set(exact)
    near: dict[int, tuple[int, float]] = {}
    for i, j, d in near_pairs(matrix, numeric, tolerance, query=query):
        if i not in seen and (i not in near or d < near[i][1]):
            near[i] = (j, d)
    return {
        "test_rows": len(test),
        "exact": {"rows": len(exact), "test_rows": [i + 1 for i in exact]},
        "near": {
            "rows": len(near),
            "pairs": [
                {"test_row": i + 1, "train_row": j + 1, "distance": d}
                for i, (j, d) in sorted(near.items(), key=lambda item: item[1][1])
            ],
        },
    }
