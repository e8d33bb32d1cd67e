"""Categories: a vocabulary of values seen at least ``min_count`` times.

Index 0 is the unknown bucket (values rarer than ``min_count`` in training, and
values never seen in training), index 1 is "missing", and 2.. are the
vocabulary in order of frequency. Rare training values feed the unknown bucket,
so the network learns what to do with an unseen value instead of meeting it
for the first time at predict time. Unseen values at predict time are allowed,
with a :class:`~deepstrata.errors.DataWarning` that names the column and values.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from deepstrata.data.sources import Table
from deepstrata.errors import DataWarning
from deepstrata.preprocess.base import Preprocessor

UNKNOWN, MISSING, FIRST = 0, 1, 2
# Up to this many rows, a dict lookup beats pandas' vectorised one: for a single row
# pandas' fixed per-call cost (~50 µs) is most of a category column's share of predict.
FEW_ROWS = 16


def category_strings(column: pd.Series) -> pd.Series:
    """Values as strings, stable across file formats (``3`` and ``3.0`` are one value)."""
    if column.dtype == "str":
        # Strings already, NaN where missing (pandas' default for text): strip only.
        return column.str.strip()
    present = column.dropna()
    if pd.api.types.is_float_dtype(present) and np.all(np.mod(present.to_numpy(), 1) == 0):
        text = present.astype("int64").astype(str)
    elif pd.api.types.is_bool_dtype(present):
        text = present.map({True: "true", False: "false"})
    else:
        text = present.astype(str).str.strip()
    return text.reindex(column.index)


class CategoryPreprocessor(Preprocessor):
    kind = "category"
    dtype = "int64"

    def __init__(self, *, min_count: int = 2) -> None:
        self.min_count = min_count
        self._set_vocabulary([])

    def _set_vocabulary(self, vocabulary: list[str]) -> None:
        """The vocabulary, and the two lookups transform() uses, built once here."""
        self.vocabulary = vocabulary
        self._index = pd.Index(vocabulary)  # vectorised lookup for many rows
        self._positions = {value: i for i, value in enumerate(vocabulary)}  # for a few rows

    def fit(self, column: pd.Series, table: Table) -> CategoryPreprocessor:
        counts = category_strings(column).value_counts(dropna=True)
        kept = counts[counts >= self.min_count]
        # Most frequent first; ties broken by value so that the order is reproducible.
        order = sorted(kept.items(), key=lambda item: (-item[1], item[0]))
        self._set_vocabulary([value for value, _ in order])
        return self

    def transform(self, column: pd.Series, table: Table) -> np.ndarray:
        text = category_strings(column)  # str values; NaN where missing
        if len(text) <= FEW_ROWS:
            values = text.tolist()
            missing = np.array([not isinstance(v, str) for v in values], dtype=bool)
            codes = np.array([self._positions.get(v, -1) for v in values], dtype=np.int64)
        else:
            missing = text.isna().to_numpy()
            codes = self._index.get_indexer(text).astype(np.int64)  # -1: not in it
        unseen = (codes < 0) & ~missing
        out = np.where(missing, MISSING, np.where(unseen, UNKNOWN, codes + FIRST))
        if unseen.any():
            values = pd.unique(text[unseen])
            shown = ", ".join(repr(v) for v in values[:5]) + (" …" if len(values) > 5 else "")
            warnings.warn(
                f"column {column.name!r}: {int(unseen.sum())} row(s) have values not in the training "
                f"vocabulary ({shown}); they were treated as unknown",
                DataWarning,
                stacklevel=2,
            )
        return out[:, None]

    @property
    def width(self) -> int:
        return 1

    @property
    def cardinality(self) -> int:
        return len(self.vocabulary) + FIRST

    def state(self) -> dict:
        return {"min_count": self.min_count, "vocabulary": self.vocabulary}

    @classmethod
    def from_state(cls, state: dict) -> CategoryPreprocessor:
        pre = cls(min_count=state["min_count"])
        pre._set_vocabulary(list(state["vocabulary"]))
        return pre
