"""Numbers: impute the median, flag missing values, scale robustly, clip.

Scaling uses the median and the inter-quartile range (not mean and standard
deviation), so one extreme value does not squash every other value towards zero;
scaled values are clipped to ``±clip`` so an outlier at predict time cannot
produce an activation the network has never seen.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from deepstrata.data.table import Table
from deepstrata.preprocess.base import (
    HttpField,
    Preprocessor,
    ValueRefused,
    missing,
    plain_description,
    to_float,
)

IQR_TO_STD = 1.349  # the IQR of a standard normal distribution


class NumberPreprocessor(Preprocessor):
    kind = "number"
    dtype = "float32"

    def __init__(self, *, clip: float = 10.0) -> None:
        self.clip = clip
        self.center: float = 0.0
        self.scale: float = 1.0
        self.flag_missing: bool = False

    def fit(self, column: pd.Series, table: Table) -> NumberPreprocessor:
        values = to_float(column, table)
        present = values[~np.isnan(values)]
        self.flag_missing = bool(len(present) < len(values))
        if len(present) == 0:
            self.center, self.scale = 0.0, 1.0
            return self
        q25, median, q75 = np.percentile(present, [25, 50, 75])
        scale = (q75 - q25) / IQR_TO_STD
        if not scale > 0:
            scale = float(np.std(present))
        self.center = float(median)
        self.scale = float(scale) if scale > 0 else 1.0
        return self

    def transform(self, column: pd.Series, table: Table) -> np.ndarray:
        return self._scaled(to_float(column, table))

    def transform_values(self, values: list, *, column: str) -> np.ndarray:
        """Numbers (or None) straight to the block; anything else through ``transform``,
        which names a value that is no number."""
        if not all(
            v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values
        ):
            return super().transform_values(values, column=column)
        array = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
        if np.isinf(array).any():
            return super().transform_values(values, column=column)
        return self._scaled(array)

    def _scaled(self, values: np.ndarray) -> np.ndarray:
        missing = np.isnan(values)
        scaled = np.clip((values - self.center) / self.scale, -self.clip, self.clip)
        scaled[missing] = 0.0  # the median, after centring
        if self.flag_missing:
            return np.stack([scaled, missing], axis=1).astype(np.float32)
        return scaled[:, None].astype(np.float32)

    @property
    def width(self) -> int:
        return 2 if self.flag_missing else 1

    def state(self) -> dict:
        return {
            "center": self.center,
            "scale": self.scale,
            "clip": self.clip,
            "flag_missing": self.flag_missing,
        }

    @classmethod
    def from_state(cls, state: dict) -> NumberPreprocessor:
        pre = cls(clip=state["clip"])
        pre.center, pre.scale, pre.flag_missing = (
            state["center"],
            state["scale"],
            state["flag_missing"],
        )
        return pre


def _parse(value, limits) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueRefused("a number")
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        number = math.inf
    if not math.isfinite(number):
        raise ValueRefused("a finite number")
    return number


HTTP = HttpField(
    _parse, lambda categories, limits: {"type": "number"}, plain_description("number"), numeric=True
)


def sample(pre: NumberPreprocessor, rng, rows: int) -> list:
    """Around the training median, two spreads either way; some missing."""
    values = pre.center + pre.scale * rng.normal(0, 2, rows)
    return np.where(missing(rng, rows), np.nan, values).tolist()


def examples(rng, rows: int, folder) -> list:
    """Raw training values for checks (:func:`deepstrata.testing.check_kind`)."""
    values = rng.normal(10, 5, rows).round(3).tolist()
    values[1] = None
    return values
