"""The target: class labels <-> indices, or a standardised regression value."""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepstrata.data.sources import Table
from deepstrata.preprocess.base import raise_at, to_float
from deepstrata.preprocess.category import category_strings


class TargetEncoder:
    """Fitted on training targets; ``encode`` for training, ``decode`` for predictions."""

    def __init__(self, task: str) -> None:
        self.task = task
        self.classes: list[str] = []
        self.mean = 0.0
        self.std = 1.0

    @property
    def is_classification(self) -> bool:
        return self.task != "regression"

    def fit(self, column: pd.Series, table: Table) -> TargetEncoder:
        if self.is_classification:
            self.classes = sorted(category_strings(column).dropna().unique().tolist(), key=_natural)
        else:
            values = to_float(column, table)
            self.mean, self.std = float(np.nanmean(values)), float(np.nanstd(values)) or 1.0
        return self

    def encode(self, column: pd.Series, table: Table) -> np.ndarray:
        """int64 class indices, or float32 standardised values. Missing -> DataError."""
        if column.isna().any():
            raise_at(table, column, column.isna().to_numpy(), "the target is missing")
        if self.is_classification:
            codes = pd.Index(self.classes).get_indexer(category_strings(column))
            if (codes < 0).any():
                raise_at(
                    table,
                    column,
                    codes < 0,
                    "target value {value} is not one of the classes the model was trained on "
                    f"({', '.join(self.classes)})",
                )
            return codes.astype(np.int64)
        return ((to_float(column, table) - self.mean) / self.std).astype(np.float32)

    def decode(self, values: np.ndarray) -> np.ndarray:
        """Class indices -> labels (in the target's original type where possible), or values."""
        if self.is_classification:
            return np.asarray(self.labels(), dtype=object)[values]
        return values * self.std + self.mean

    def labels(self) -> list:
        """Classes as the user wrote them: ints stay ints, "yes" stays "yes"."""
        try:
            return [int(c) for c in self.classes]
        except ValueError:
            return list(self.classes)

    def state(self) -> dict:
        return {"task": self.task, "classes": self.classes, "mean": self.mean, "std": self.std}

    @classmethod
    def from_state(cls, state: dict) -> TargetEncoder:
        encoder = cls(state["task"])
        encoder.classes, encoder.mean, encoder.std = state["classes"], state["mean"], state["std"]
        return encoder


def _natural(value: str) -> tuple:
    """Sort "2" before "10" when every class is a number."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)
