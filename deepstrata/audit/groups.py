"""Sensitive columns as groups: each column alone, and their intersection (sex × race).

A group with fewer than ``min_group_size`` rows is *too small*: it is listed with its
count but not scored, and it takes no part in a disparity (a rate on 12 rows says little
about the people behind them). Every check on the columns runs before any work, and
fails with a :class:`~deepstrata.errors.DataError` naming the column.

>>> import pandas as pd
>>> from deepstrata.data.sources import read_table
>>> table = read_table(pd.DataFrame({"sex": ["F", "M"] * 20, "race": ["a"] * 30 + ["b"] * 10}))
>>> [g.name for g in groupings(table, ["sex", "race"], min_group_size=15)]
['sex', 'race', 'sex × race']
>>> groupings(table, ["race"], min_group_size=15)[0].too_small
{'b': 10}
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from deepstrata.data.table import Table
from deepstrata.errors import ConfigError

MISSING = "(missing)"  # the group of rows whose sensitive value is missing
JOIN = " × "  # between the columns' values in an intersection's group name
DEFAULT_MIN_GROUP_SIZE = 30


@dataclass
class Grouping:
    """One way of splitting the rows: by one column, or by the intersection of several.

    ``labels``: ``(N,)`` the group of each row, as text; ``scored``: the groups with at
    least the minimum number of rows, in order of size; ``too_small``: the others, with
    their row counts.
    """

    name: str
    columns: list[str]
    labels: np.ndarray
    scored: list[str] = field(default_factory=list)
    too_small: dict[str, int] = field(default_factory=dict)

    @property
    def mask(self) -> np.ndarray:
        """``(N,)`` bool: rows in a scored group."""
        return np.isin(self.labels, self.scored)


def parse_sensitive(value: str | list[str] | None, option: str = "--sensitive") -> list[str]:
    """``"sex,race"`` or ``["sex", "race"]`` -> ``["sex", "race"]`` (each named once)."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    columns = list(dict.fromkeys(item.strip() for item in items if item and item.strip()))
    if not columns:
        raise ConfigError("name at least one column, e.g. --sensitive sex,race", option=option)
    return columns


def column_labels(column: pd.Series) -> np.ndarray:
    """A column's values as group names (text; a missing value is its own group)."""
    text = column.astype("string").fillna(MISSING)
    return text.to_numpy(dtype=object).astype(str)


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


def groupings(table: Table, columns: list[str], *, min_group_size: int) -> list[Grouping]:
    """Each column alone, then (for several) their intersection; groups sorted by size."""
    per_column = {name: column_labels(table.frame[name]) for name in columns}
    splits = [(name, [name], labels) for name, labels in per_column.items()]
    if len(columns) > 1:
        joined = np.array([JOIN.join(values) for values in zip(*per_column.values())])
        splits.append((JOIN.join(columns), list(columns), joined))
    result = []
    for name, names, labels in splits:
        counts = pd.Series(labels).value_counts(sort=False)
        counts = counts.sort_index().sort_values(ascending=False, kind="stable")
        scored = [str(k) for k, v in counts.items() if v >= min_group_size]
        small = {str(k): int(v) for k, v in counts.items() if v < min_group_size}
        result.append(Grouping(name, names, labels, scored, small))
    return result
