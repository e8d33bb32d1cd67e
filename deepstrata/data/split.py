"""Train / validation split: stratified by class for classification, seeded."""

from __future__ import annotations

import warnings

import numpy as np

from deepstrata.seeding import numpy_rng


def train_validation_split(
    target: np.ndarray, *, stratify: bool, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted positions (train, validation).

    With ``stratify``, every class with at least two rows puts about ``fraction``
    of its rows into validation, at least one and never all; a class with one
    row stays in training (validation can then be empty: the caller decides).
    Without, a plain shuffled split with >= 1 row on each side.
    """
    rng = numpy_rng(seed, stream=2)
    rows = len(target)
    if not stratify:
        order = rng.permutation(rows)
        count = min(max(1, round(rows * fraction)), rows - 1)
        return np.sort(order[count:]), np.sort(order[:count])
    validation = []
    for label in np.unique(target):
        members = rng.permutation(np.flatnonzero(target == label))
        if len(members) >= 2:
            held_out = min(len(members) - 1, max(1, round(len(members) * fraction)))
            validation.append(members[:held_out])
    validation = np.sort(np.concatenate(validation)) if validation else np.empty(0, dtype=np.int64)
    train = np.setdiff1d(np.arange(rows), validation)
    return train, validation


def kfold_split(
    target: np.ndarray, *, folds: int, stratify: bool, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``folds`` (train, held-out) pairs of sorted positions; every row is held out once.

    Stratified folds keep each class's share in every fold; a class with fewer rows
    than folds is spread as far as it goes (scikit-learn's StratifiedKFold).
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    rows = len(target)
    if folds > rows:
        raise ValueError(f"{folds} folds need at least {folds} rows, got {rows}")
    random_state = int(numpy_rng(seed, stream=4).integers(2**31 - 1))
    splitter = (StratifiedKFold if stratify else KFold)(
        n_splits=folds, shuffle=True, random_state=random_state
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        return [(np.sort(a), np.sort(b)) for a, b in splitter.split(np.zeros(rows), target)]
