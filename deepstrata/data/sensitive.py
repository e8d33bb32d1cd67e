"""Sensitive columns: named once, checked before any work, turned into group names.

A row's group is its value of a sensitive column, as text (a missing value is the group
``(missing)``); for several columns, their values joined by `` × `` (the intersection).
The fairness audit (:mod:`deepstrata.audit.groups`) and the fairness thresholds
(:mod:`deepstrata.calibrate.thresholds`) read groups from here, so both name a row's
group alike.

>>> group_labels({"sex": ["F", None], "race": ["a", "b"]}).tolist()
['F × a', '(missing) × b']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from deepstrata.data.table import Table
from deepstrata.options.audit import parse_sensitive

__all__ = [
    "DEFAULT_MIN_GROUP_SIZE",
    "JOIN",
    "MISSING",
    "check_sensitive",
    "column_labels",
    "group_labels",
    "parse_sensitive",
]

MISSING = "(missing)"  # the group of rows whose sensitive value is missing
JOIN = " × "  # between the columns' values in an intersection's group name
DEFAULT_MIN_GROUP_SIZE = 30


def column_labels(column: pd.Series | Sequence) -> np.ndarray:
    """A column's values as group names (text; a missing value is its own group). Whole
    numbers read as floats (a JSON record, a column with a gap) are named as integers, so
    ``2.0`` and ``2`` are one group.

    >>> column_labels(pd.Series([2.0, None, 1.0])).tolist()
    ['2', '(missing)', '1']
    """
    values = pd.Series(column)
    if pd.api.types.is_float_dtype(values):
        finite = values.dropna()
        if len(finite) and (finite == finite.round()).all():
            values = values.astype("Int64")
    text = values.astype("string").fillna(MISSING)
    return text.to_numpy(dtype=object).astype(str)


def group_labels(columns: Mapping[str, pd.Series | Sequence]) -> np.ndarray:
    """``(N,)`` each row's group: one column's value, or the columns' values joined."""
    labels = [column_labels(values) for values in columns.values()]
    if len(labels) == 1:
        return labels[0]
    return np.array([JOIN.join(values) for values in zip(*labels)], dtype=object).astype(str)


def check_sensitive(
    table: Table, columns: list[str], *, min_group_size: int, target: str | None = None
) -> None:
    """A DataError for a sensitive column that is absent, the target, constant, or
    without two groups of at least ``min_group_size`` rows."""
    frame = table.frame
    for name in columns:
        if name not in frame.columns:
            present = ", ".join(map(str, frame.columns[:12]))
            raise table.error(
                f"the sensitive column {name!r} is not in the data (columns: {present})",
                column=name,
                hint="--sensitive names columns of the data",
            )
        if name == target:
            raise table.error(
                "the target cannot be a sensitive column", column=name, hint="--sensitive"
            )
        counts = pd.Series(column_labels(frame[name])).value_counts()
        if len(counts) < 2:
            raise table.error(
                f"the sensitive column has one value ({counts.index[0]!r}) in all "
                f"{len(frame)} rows: there are no groups to compare",
                column=name,
            )
        big = counts[counts >= min_group_size]
        if len(big) < 2:
            shown = ", ".join(f"{k} {v}" for k, v in counts.head(6).items())
            raise table.error(
                f"fewer than two groups have --min-group-size {min_group_size} rows "
                f"({shown}): nothing to compare",
                column=name,
                hint="lower --min-group-size, or audit more rows",
            )
