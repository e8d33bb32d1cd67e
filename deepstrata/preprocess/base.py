"""The preprocessor interface: one column in, one float or integer block out.

A preprocessor is fitted on the training rows of one column and then turns any
rows of that column into a ``(rows, width)`` NumPy array. Its state is plain
JSON (``state()`` / ``from_state``) so that a bundle never needs pickle.

Abstract interface, final classes: the concrete preprocessors share helper
functions from this module, never implementation through inheritance.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import pandas as pd

from deepstrata.data.sources import Table


class Preprocessor(ABC):
    kind: ClassVar[str]
    dtype: ClassVar[str]  # "float32" or "int64": what transform() returns

    @abstractmethod
    def fit(self, column: pd.Series, table: Table) -> Preprocessor:
        """Learn the state from the training rows of ``column``; returns self."""

    @abstractmethod
    def transform(self, column: pd.Series, table: Table) -> np.ndarray:
        """``(rows, width)`` array of ``dtype``. Raises DataError naming the row."""

    @property
    @abstractmethod
    def width(self) -> int:
        """Number of output columns of ``transform``."""

    @abstractmethod
    def state(self) -> dict:
        """JSON-serialisable state, enough for ``from_state`` to rebuild it."""

    @classmethod
    @abstractmethod
    def from_state(cls, state: dict) -> Preprocessor:
        """Rebuild a fitted preprocessor from ``state()``."""


def first_position(mask: np.ndarray) -> int:
    """Position of the first True in a boolean mask (which must have one)."""
    return int(np.flatnonzero(mask)[0])


def raise_at(
    table: Table, column: pd.Series, mask: np.ndarray, message: str, hint: str | None = None
):
    """Raise the DataError for the first row flagged in ``mask``.

    ``column`` may be a subset of the table's rows (the training split): its index
    labels are positions in the whole table, so the error names the right row and
    file line. ``{value}`` in ``message`` is replaced by the offending value.
    """
    position = first_position(mask)
    value = column.iloc[position]
    if isinstance(value, np.generic):
        value = value.item()  # show inf or 3, not np.float64(inf) or np.int64(3)
    raise table.error(
        message.format(value=repr(value)),
        column=str(column.name),
        position=int(column.index[position]),
        hint=hint,
    )


def to_float(column: pd.Series, table: Table, *, what: str = "a number") -> np.ndarray:
    """Float64 values of ``column``; NaN where missing.

    Raises DataError at the first value that is present but not a number, and at
    the first infinite value (infinity is never a measurement; missing is NaN).
    """
    name = str(column.name)
    if pd.api.types.is_bool_dtype(column):
        values = column.astype("float64").to_numpy()
    elif pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype="float64", na_value=np.nan)
    else:
        coerced = pd.to_numeric(column, errors="coerce")
        bad = (coerced.isna() & column.notna()).to_numpy()
        if bad.any():
            raise_at(
                table,
                column,
                bad,
                f"expected {what}, got {{value}}",
                hint=f"fix the value, or treat the column as a category with --column {name}=category",
            )
        values = coerced.to_numpy(dtype="float64", na_value=np.nan)
    infinite = np.isinf(values)
    if infinite.any():
        raise_at(
            table,
            column,
            infinite,
            "expected a finite number, got {value}",
            hint="replace infinities with a value or leave the cell empty (missing)",
        )
    return values
