"""A :class:`Table`: a DataFrame plus where each of its rows came from.

Everything that reads data returns one (:func:`deepstrata.data.sources.read_table`,
:func:`deepstrata.data.folders.read_folder`), so that an error found anywhere later (a
bad value in preprocessing, a missing label) can name the file, the line and the column
a user would look at in an editor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from deepstrata.errors import DataError

__all__ = ["TABLE_SUFFIXES", "Table"]

# The files read_table reads, by suffix (a folder of files holds no table among them).
TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".txt", ".parquet", ".pq", ".jsonl", ".ndjson")


@dataclass(frozen=True, eq=False)
class Table:
    """A parsed table and the place each of its rows came from.

    ``frame`` has one row per data row and a ``RangeIndex`` 0..n-1. ``source``
    is the file path as the user gave it, or ``"<DataFrame>"``. ``lines`` is an
    int64 array of shape ``(n,)``: the 1-based physical line on which each data
    row starts, for text files; ``None`` for Parquet files and DataFrames.

    ``eq=False``: tables compare and hash by identity, since comparing the
    frames field by field has no single truth value.

    >>> from deepstrata.data.sources import read_table
    >>> table = read_table(pd.DataFrame({"age": [31, 45]}))
    >>> str(table.error("expected a number, got 'abc'", column="age", position=1))
    "<DataFrame>, row 2, column 'age': expected a number, got 'abc'"
    """

    frame: pd.DataFrame
    source: str
    lines: np.ndarray | None

    def location(self, position: int) -> dict:
        """Where the row at 0-based ``position`` is: ``{"row": int, "line": int | None}``."""
        line = None if self.lines is None else int(self.lines[position])
        return {"row": int(position) + 1, "line": line}

    def error(
        self,
        message: str,
        *,
        column: str | None = None,
        position: int | None = None,
        hint: str | None = None,
    ) -> DataError:
        """A :class:`DataError` to raise, naming this source, ``column`` and row ``position``."""
        where = {"row": None, "line": None} if position is None else self.location(position)
        return DataError(message, file=self.source, column=column, hint=hint, **where)

    def take(self, positions) -> Table:
        """The rows at 0-based ``positions``, in that order, numbered again from 0: the
        same source (so paths in it stay relative to the same folder), each row's line kept.

        >>> from deepstrata.data.sources import read_table
        >>> read_table(pd.DataFrame({"age": [31, 45, 52]})).take([2, 0]).frame["age"].tolist()
        [52, 31]
        """
        positions = np.asarray(positions, dtype=np.int64)
        frame = self.frame.iloc[positions].reset_index(drop=True)
        lines = None if self.lines is None else self.lines[positions]
        return Table(frame=frame, source=self.source, lines=lines)
