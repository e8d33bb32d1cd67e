"""Booleans: true/false, yes/no, y/n, t/f and 1/0 (any case) -> +1 / -1, missing -> 0."""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepstrata.data.schema import FALSE_WORDS, TRUE_WORDS
from deepstrata.data.sources import Table
from deepstrata.preprocess.base import Preprocessor, raise_at


def to_sign(column: pd.Series, table: Table) -> np.ndarray:
    """+1.0 for true, -1.0 for false, 0.0 for missing; DataError for anything else."""
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        # Compared as numbers: a per-value Python call and two string lookups per row
        # cost ~0.4 ms on a single row and ~40 ms on 100k rows.
        values = column.to_numpy(dtype="float64", na_value=np.nan)
        present = ~np.isnan(values)
        is_true, is_false = values == 1.0, values == 0.0
    else:
        present = column.notna().to_numpy()
        text = column.astype(str).str.strip().str.lower()
        is_true = text.isin(TRUE_WORDS).to_numpy() & present
        is_false = text.isin(FALSE_WORDS).to_numpy() & present
    bad = present & ~is_true & ~is_false
    if bad.any():
        raise_at(table, column, bad, "expected true/false (or yes/no, 1/0), got {value}")
    return is_true.astype(np.float64) - is_false.astype(np.float64)


class BooleanPreprocessor(Preprocessor):
    kind = "boolean"
    dtype = "float32"

    def __init__(self) -> None:
        self.flag_missing = False

    def fit(self, column: pd.Series, table: Table) -> BooleanPreprocessor:
        to_sign(column, table)  # validates every training value
        self.flag_missing = bool(column.isna().any())
        return self

    def transform(self, column: pd.Series, table: Table) -> np.ndarray:
        sign = to_sign(column, table)
        if self.flag_missing:
            return np.stack([sign, column.isna().to_numpy()], axis=1).astype(np.float32)
        return sign[:, None].astype(np.float32)

    @property
    def width(self) -> int:
        return 2 if self.flag_missing else 1

    def state(self) -> dict:
        return {"flag_missing": self.flag_missing}

    @classmethod
    def from_state(cls, state: dict) -> BooleanPreprocessor:
        pre = cls()
        pre.flag_missing = state["flag_missing"]
        return pre
