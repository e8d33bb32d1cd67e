"""Real data from scikit-learn, split 60/20/20 into train / validation / test, one per task.

binary: breast cancer (569 x 30); multiclass: wine (178 x 13, 3 classes);
regression: diabetes (442 x 10), the target standardised with the training mean and
standard deviation, as deepstrata's target encoder does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pytest

TASKS = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class Split:
    task: str
    num_classes: int
    train: tuple[np.ndarray, np.ndarray]  # (features (N, D) float64, target (N,))
    validation: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]


@functools.cache
def load_split(task: str) -> Split:
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
    from sklearn.model_selection import train_test_split

    loader = {"binary": load_breast_cancer, "multiclass": load_wine, "regression": load_diabetes}
    features, target = loader[task](return_X_y=True)
    stratify = None if task == "regression" else target
    train_x, rest_x, train_y, rest_y = train_test_split(
        features, target, test_size=0.4, random_state=0, stratify=stratify
    )
    validation_x, test_x, validation_y, test_y = train_test_split(
        rest_x, rest_y, test_size=0.5, random_state=0, stratify=None if stratify is None else rest_y
    )
    if task == "regression":
        mean, std = train_y.mean(), train_y.std()
        train_y, validation_y, test_y = ((y - mean) / std for y in (train_y, validation_y, test_y))
    else:
        train_y, validation_y, test_y = (
            y.astype(np.int64) for y in (train_y, validation_y, test_y)
        )
    num_classes = {"binary": 2, "multiclass": 3, "regression": 0}[task]
    return Split(
        task, num_classes, (train_x, train_y), (validation_x, validation_y), (test_x, test_y)
    )


@pytest.fixture(params=TASKS)
def split(request) -> Split:
    return load_split(request.param)
