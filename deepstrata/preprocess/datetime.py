"""Dates and times: a scaled year plus cyclic (sin, cos) encodings of the calendar.

Cyclic encodings make December sit next to January and 23:00 next to 00:00.
The time-of-day pair is only emitted when the training values carry a time.
Time-zone-aware values are converted to UTC.
"""

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

MAX_DATETIME_CHARS = 64  # a request's date text


def to_datetime(column: pd.Series, table: Table) -> pd.Series:
    """Parsed timestamps (naive UTC), NaT where missing; DataError for unparsable values."""
    if pd.api.types.is_datetime64_any_dtype(column):
        parsed = column
    else:
        parsed = pd.to_datetime(column, errors="coerce", format="mixed", utc=True)
        bad = (parsed.isna() & column.notna()).to_numpy()
        if bad.any():
            raise_at(table, column, bad, "expected a date or time, got {value}")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed


def _cycle(values: np.ndarray, period: float) -> list[np.ndarray]:
    angle = 2 * np.pi * values / period
    return [np.sin(angle), np.cos(angle)]


class DatetimePreprocessor(Preprocessor):
    kind = "datetime"
    dtype = "float32"

    def __init__(self) -> None:
        self.year_mean = 0.0
        self.year_scale = 1.0
        self.has_time = False
        self.flag_missing = False

    def fit(self, column: pd.Series, table: Table) -> DatetimePreprocessor:
        parsed = to_datetime(column, table).dropna()
        self.flag_missing = bool(column.isna().any())
        if len(parsed):
            years = (
                parsed.dt.year.to_numpy(dtype=np.float64) + parsed.dt.day_of_year.to_numpy() / 366.0
            )
            self.year_mean = float(years.mean())
            self.year_scale = float(years.std()) or 1.0
            seconds = (parsed.dt.hour * 3600 + parsed.dt.minute * 60 + parsed.dt.second).to_numpy()
            self.has_time = bool(np.any(seconds != 0))
        return self

    def transform(self, column: pd.Series, table: Table) -> np.ndarray:
        parsed = to_datetime(column, table)
        missing = parsed.isna().to_numpy()
        filled = parsed.fillna(pd.Timestamp("2000-01-01"))
        years = filled.dt.year.to_numpy(dtype=np.float64) + filled.dt.day_of_year.to_numpy() / 366.0
        parts = [np.clip((years - self.year_mean) / self.year_scale, -10, 10)]
        parts += _cycle(filled.dt.month.to_numpy() - 1, 12)
        parts += _cycle(filled.dt.day_of_week.to_numpy(), 7)
        parts += _cycle(filled.dt.day.to_numpy() - 1, 31)
        if self.has_time:
            seconds = (filled.dt.hour * 3600 + filled.dt.minute * 60 + filled.dt.second).to_numpy()
            parts += _cycle(seconds, 86400)
        block = np.stack(parts, axis=1)
        block[missing] = 0.0
        if self.flag_missing:
            block = np.concatenate([block, missing[:, None]], axis=1)
        return block.astype(np.float32)

    @property
    def width(self) -> int:
        return 7 + 2 * self.has_time + self.flag_missing

    def state(self) -> dict:
        return {
            "year_mean": self.year_mean,
            "year_scale": self.year_scale,
            "has_time": self.has_time,
            "flag_missing": self.flag_missing,
        }

    @classmethod
    def from_state(cls, state: dict) -> DatetimePreprocessor:
        pre = cls()
        pre.year_mean, pre.year_scale = state["year_mean"], state["year_scale"]
        pre.has_time, pre.flag_missing = state["has_time"], state["flag_missing"]
        return pre


def _parse(value, limits) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and len(value) <= MAX_DATETIME_CHARS:
        try:
            parsed = pd.to_datetime(value, format="mixed", utc=True)
        except (ValueError, TypeError, OverflowError):
            parsed = None
        if parsed is not None and not pd.isna(parsed):
            return value
    raise ValueRefused("a date or time such as '2024-05-31' or '2024-05-31T14:00:00Z'")


def _schema(categories, limits) -> dict:
    return {
        "type": "string",
        "maxLength": MAX_DATETIME_CHARS,
        "examples": ["2024-05-31", "2024-05-31T14:00:00Z"],
    }


HTTP = HttpField(_parse, _schema, plain_description("datetime"))


def sample(pre: DatetimePreprocessor, rng, rows: int) -> list:
    """Dates around the training years; some missing."""
    years = pre.year_mean + pre.year_scale * rng.normal(0, 1.5, rows)
    stamps = pd.to_datetime((years - 1970) * 365.2425 * 86400, unit="s")
    return [None if m else s.isoformat() for s, m in zip(stamps, missing(rng, rows))]


def examples(rng, rows: int, folder) -> list:
    """Raw training values for checks (:func:`deepstrata.testing.check_kind`)."""
    days = rng.integers(0, 2000, rows)
    stamps = pd.Timestamp("2020-01-01") + pd.to_timedelta(days, unit="D")
    values = [s.strftime("%Y-%m-%d") for s in stamps]
    values[1] = None
    return values
