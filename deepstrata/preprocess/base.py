"""The preprocessor interface: one column in, one float or integer block out.

A preprocessor is fitted on the training rows of one column and then turns any
rows of that column into a ``(rows, width)`` NumPy array. Its state is plain
JSON (``state()`` / ``from_state``) so that a bundle never needs pickle.

Abstract interface, final classes: the concrete preprocessors share helper
functions from this module, never implementation through inheritance.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from deepstrata.data.table import Table
from deepstrata.values import numbers


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

    def transform_values(self, values: list, *, column: str) -> np.ndarray:
        """``transform`` of a few raw values (a request's records) as a list: the same
        block, without building a pandas column. Kinds whose ``transform`` costs a
        request much on one row override it; the default goes through ``transform``."""
        series = pd.Series(values, name=column, dtype=object)
        return self.transform(series, RECORDS)

    @classmethod
    def from_options(cls, options: dict) -> Preprocessor:
        """An unfitted preprocessor for a fit with ``options`` (every option present: see
        :func:`deepstrata.config.with_defaults`). Kinds with options override this."""
        return cls()


# Where values given as records come from, for errors: "<records>, row 2, column 'age'".
RECORDS = Table(frame=pd.DataFrame(), source="<records>", lines=None)


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

    def fail(mask: np.ndarray, message: str, hint: str | None = None) -> None:
        raise_at(table, column, mask, message, hint=hint)

    return numbers(column, fail, what=what)


# -- values arriving over HTTP (see deepstrata.serve.records) ---------------------------------


class ValueRefused(ValueError):
    """A request's value that a kind cannot take; ``expected`` says what it takes."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


@dataclass(frozen=True)
class HttpField:
    """How a kind's value arrives in a JSON request.

    ``parse(value, limits)``: the value the preprocessor takes (None for null), or
    :class:`ValueRefused`; ``schema(categories, limits)``: its JSON Schema (null is added
    by the server); ``describe(categories, limits)``: a sentence for the OpenAPI page;
    ``numeric``: the column is float64 with NaN for missing (else objects). ``limits`` is
    the server's settings (``max_text_chars``, ``max_file_bytes``)."""

    parse: Callable[[Any, Any], Any]
    schema: Callable[[list[str], Any], dict]
    describe: Callable[[list[str], Any], str]
    numeric: bool = False


def plain_description(kind: str) -> Callable[[list[str], Any], str]:
    return lambda categories, limits: f"{kind}; null is missing."


_BASE64 = re.compile(rb"^[A-Za-z0-9+/]*={0,2}$")
MEDIA_TYPES = {"image": "image/*", "audio": "audio/*"}


def base64_length(size: int) -> int:
    """Characters of the base64 text of ``size`` bytes."""
    return 4 * math.ceil(size / 3)


def file_field(kind: str) -> HttpField:
    """A file's bytes, base64-encoded, at most ``limits.max_file_bytes`` decoded."""

    def parse(value, limits) -> bytes | None:
        if value is None:
            return None
        limit = limits.max_file_bytes
        expected = f"the {kind} file's bytes as a base64 string"
        if not isinstance(value, str):
            raise ValueRefused(expected)
        encoded = value.encode("ascii", errors="replace")
        if len(encoded) > base64_length(limit):
            raise ValueRefused(
                f"a {kind} of at most {limit} bytes (base64: {base64_length(limit)})"
            )
        if not _BASE64.match(encoded) or len(encoded) % 4:
            raise ValueRefused(expected)
        try:
            data = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ValueRefused(expected) from None
        if not data or len(data) > limit:
            raise ValueRefused(f"a non-empty {kind} of at most {limit} bytes")
        return data

    def schema(categories, limits) -> dict:
        return {
            "type": "string",
            "contentEncoding": "base64",
            "contentMediaType": MEDIA_TYPES.get(kind, "application/octet-stream"),
            "maxLength": base64_length(limits.max_file_bytes),
        }

    def describe(categories, limits) -> str:
        return (
            f"{kind} file, base64-encoded, at most {limits.max_file_bytes} bytes decoded; "
            "null is missing."
        )

    return HttpField(parse, schema, describe)


def missing(rng, rows: int, share: float = 0.1) -> np.ndarray:
    """``(rows,)`` bool: which synthetic values are missing (every kind takes missing ones)."""
    return rng.random(rows) < share
