"""The target: what a row's target value becomes for training, and back.

A :class:`TargetEncoder` holds what one fit learnt of its target (the classes, or the
mean and spread of a number) and leaves the task-specific part to the task
(:mod:`deepstrata.tasks`): class indices, label indicators or standardised values.

>>> import pandas as pd
>>> encoder = TargetEncoder("binary").fit(pd.Series(["no", "yes", "no"]), None)
>>> encoder.classes, encoder.encode(pd.Series(["yes"]), None).tolist()
(['no', 'yes'], [1])
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepstrata import tasks
from deepstrata.data.table import Table
from deepstrata.preprocess.base import raise_at


class TargetEncoder:
    """Fitted on training targets; ``encode`` for training, ``decode`` for predictions."""

    def __init__(self, task: str) -> None:
        self.task = task
        self.spec = tasks.get(task)
        self.classes: list[str] = []
        self.mean = 0.0
        self.std = 1.0

    @property
    def is_classification(self) -> bool:
        return self.spec.classifier

    def fit(self, column: pd.Series, table: Table) -> TargetEncoder:
        self.spec.fit_target(self, column, _failing(table, column))
        return self

    def encode(self, column: pd.Series, table: Table) -> np.ndarray:
        """Labels (see :mod:`deepstrata.tasks.base`); a missing value is a DataError."""
        missing = self.spec.missing_targets(column)
        if missing.any():
            raise_at(table, column, missing, "the target is missing")
        return self.spec.encode(self, column, _failing(table, column))

    def decode(self, values: np.ndarray) -> np.ndarray:
        """Point predictions -> target values (in the target's original type where possible)."""
        return self.spec.decode(self, values)

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


def _failing(table: Table, column: pd.Series):
    """``fail(mask, message, hint=None)``: the DataError at the first row flagged."""

    def fail(mask: np.ndarray, message: str, hint: str | None = None) -> None:
        raise_at(table, column, np.asarray(mask), message, hint=hint)

    return fail
