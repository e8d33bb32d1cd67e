"""Booleans: true/false, yes/no, y/n, t/f and 1/0 (any case) -> +1 / -1, missing -> 0."""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepstrata.data.table import Table
from deepstrata.preprocess.base import (
    HttpField,
    Preprocessor,
    ValueRefused,
    missing,
    plain_description,
    raise_at,
)
from deepstrata.values import FALSE_WORDS, TRUE_WORDS


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

    def transform_values(self, values: list, *, column: str) -> np.ndarray:
        """True, False or None straight to the block; words through ``transform``."""
        if not all(v is None or isinstance(v, bool) for v in values):
            return super().transform_values(values, column=column)
        sign = np.array([0.0 if v is None else (1.0 if v else -1.0) for v in values])
        if self.flag_missing:
            missing = np.array([v is None for v in values], dtype=np.float64)
            return np.stack([sign, missing], axis=1).astype(np.float32)
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


def _parse(value, limits) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and len(value) <= 8:
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise ValueRefused("true or false (or yes/no, 1/0)")


def _schema(categories, limits) -> dict:
    words = sorted(TRUE_WORDS | FALSE_WORDS)
    return {"anyOf": [{"type": "boolean"}, {"type": "string", "enum": words}]}


HTTP = HttpField(_parse, _schema, plain_description("boolean"))


def sample(pre: BooleanPreprocessor, rng, rows: int) -> list:
    values = rng.integers(0, 2, rows)
    return [None if m else bool(v) for v, m in zip(values, missing(rng, rows))]


def examples(rng, rows: int, folder) -> list:
    """Raw training values for checks (:func:`deepstrata.testing.check_kind`)."""
    words = ["yes", "no", "Yes", "no", "true", "0"]
    values = [words[i] for i in rng.integers(0, len(words), rows)]
    values[1] = None
    return values
