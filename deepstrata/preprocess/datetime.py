"""Dates and times: a scaled year plus cyclic (sin, cos) encodings of the calendar.

Cyclic encodings make December sit next to January and 23:00 next to 00:00.
The time-of-day pair is only emitted when the training values carry a time.
Time-zone-aware values are converted to UTC.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepstrata.data.sources import Table
from deepstrata.preprocess.base import Preprocessor, raise_at


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
