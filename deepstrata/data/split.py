"""Train / validation split: stratified by class for classification, seeded."""

from __future__ import annotations

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
