"""The fairness audit's groupings: each sensitive column alone, and their intersection.

A group with fewer than ``min_group_size`` rows is *too small*: it is listed with its
count but not scored, and it takes no part in a disparity (a rate on 12 rows says little
about the people behind them). The columns are checked, and rows named as groups, by
:mod:`deepstrata.data.sensitive`.

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

from deepstrata.data.sensitive import (
    DEFAULT_MIN_GROUP_SIZE,
    JOIN,
    MISSING,
    check_sensitive,
    group_labels,
    parse_sensitive,
)
from deepstrata.data.table import Table

__all__ = [
    "DEFAULT_MIN_GROUP_SIZE",
    "MISSING",
    "Grouping",
    "check_sensitive",
    "groupings",
    "parse_sensitive",
]


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


def groupings(table: Table, columns: list[str], *, min_group_size: int) -> list[Grouping]:
    """Each column alone, then (for several) their intersection; groups sorted by size."""
    splits = [(name, [name], group_labels({name: table.frame[name]})) for name in columns]
    if len(columns) > 1:
        joined = group_labels({name: table.frame[name] for name in columns})
        splits.append((JOIN.join(columns), list(columns), joined))
    result = []
    for name, names, labels in splits:
        counts = pd.Series(labels).value_counts(sort=False)
        counts = counts.sort_index().sort_values(ascending=False, kind="stable")
        scored = [str(k) for k, v in counts.items() if v >= min_group_size]
        small = {str(k): int(v) for k, v in counts.items() if v < min_group_size}
        result.append(Grouping(name, names, labels, scored, small))
    return result
