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

from deepstrata.config import default
from deepstrata.data.table import Table
from deepstrata.errors import DataWarning
from deepstrata.preprocess.base import HttpField, Preprocessor, ValueRefused, missing
from deepstrata.values import category_strings

UNKNOWN, MISSING, FIRST = 0, 1, 2
# Up to this many rows, a dict lookup beats pandas' vectorised one: for a single row
# pandas' fixed per-call cost (~50 µs) is most of a category column's share of predict.
FEW_ROWS = 16
MAX_CATEGORY_CHARS = 1000  # a request's category text
SHOWN_CATEGORIES = 50  # the OpenAPI examples list at most this many training categories


class CategoryPreprocessor(Preprocessor):
    kind = "category"
    dtype = "int64"

    def __init__(self, *, min_count: int = default("min_category_count")) -> None:
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
            _warn_unseen(column.name, int(unseen.sum()), list(pd.unique(text[unseen])))
        return out[:, None]

    def transform_values(self, values: list, *, column: str) -> np.ndarray:
        """Strings, integers or None: looked up one by one (as ``category_strings`` reads
        them); anything else through ``transform``."""
        if not all(v is None or isinstance(v, str) or type(v) is int for v in values):
            return super().transform_values(values, column=column)
        text = [
            v.strip() if isinstance(v, str) else (None if v is None else str(v)) for v in values
        ]
        found = [None if v is None else self._positions.get(v) for v in text]
        codes = [
            MISSING if v is None else UNKNOWN if at is None else at + FIRST
            for v, at in zip(text, found)
        ]
        unseen = [v for v, at in zip(text, found) if v is not None and at is None]
        if unseen:
            _warn_unseen(column, len(unseen), list(dict.fromkeys(unseen)))
        return np.array(codes, dtype=np.int64)[:, None]

    @property
    def width(self) -> int:
        return 1

    @property
    def cardinality(self) -> int:
        return len(self.vocabulary) + FIRST

    def state(self) -> dict:
        return {"min_count": self.min_count, "vocabulary": self.vocabulary}

    @classmethod
    def from_options(cls, options: dict) -> CategoryPreprocessor:
        return cls(min_count=options["min_category_count"])

    @classmethod
    def from_state(cls, state: dict) -> CategoryPreprocessor:
        pre = cls(min_count=state["min_count"])
        pre._set_vocabulary(list(state["vocabulary"]))
        return pre


def _parse(value, limits) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and len(value) <= MAX_CATEGORY_CHARS:
        return value.strip()  # as deepstrata.values.category_strings does
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueRefused(f"a string of at most {MAX_CATEGORY_CHARS} characters or an integer")


def _schema(categories, limits) -> dict:
    schema = {
        "anyOf": [{"type": "string", "maxLength": MAX_CATEGORY_CHARS}, {"type": "integer"}],
        "x-categories": categories,
    }
    if categories:
        schema["examples"] = categories[:SHOWN_CATEGORIES]
    return schema


def _describe(categories, limits) -> str:
    if not categories:
        return "category; null is missing."
    shown = ", ".join(categories[:SHOWN_CATEGORIES])
    more = len(categories) - SHOWN_CATEGORIES
    return (
        f"category seen in training: {shown}{f' (and {more} more)' if more > 0 else ''}. "
        "Another value is answered with a warning and treated as unknown; null is missing."
    )


HTTP = HttpField(_parse, _schema, _describe)


def sample(pre: CategoryPreprocessor, rng, rows: int) -> list:
    """The training categories, an unseen value and missing ones."""
    choices = [*pre.vocabulary, "an unseen value"]
    picked = [choices[i] for i in rng.integers(0, len(choices), rows)]
    return [None if m else v for v, m in zip(picked, missing(rng, rows))]


def examples(rng, rows: int, folder) -> list:
    """Raw training values for checks (:func:`deepstrata.testing.check_kind`)."""
    values = [["a", "b", "c", "d"][i] for i in rng.integers(0, 4, rows)]
    values[1] = None
    return values


def _warn_unseen(column: str, rows: int, values: list) -> None:
    """The one warning for values a column's vocabulary lacks (a table or records alike);
    it points at the caller of ``transform``."""
    shown = ", ".join(repr(v) for v in values[:5]) + (" …" if len(values) > 5 else "")
    warnings.warn(
        f"column {column!r}: {rows} row(s) have values not in the training "
        f"vocabulary ({shown}); they were treated as unknown",
        DataWarning,
        stacklevel=3,
    )
