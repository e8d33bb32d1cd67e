"""Train / validation split and K folds: stratified by class for classification, seeded.

With ``groups`` (one value per row: a speaker, a patient, a user), every group's rows
fall on one side of each split, so validation measures what a new group will see
rather than rows of groups the model trained on. Grouped splits stay stratified as
far as whole groups allow (:func:`group_split`; scikit-learn's StratifiedGroupKFold
for K folds of classes, GroupKFold otherwise). Without ``groups`` the splits are
exactly what they were before groups existed.
"""

from __future__ import annotations

import warnings

import numpy as np

from deepstrata.seeding import numpy_rng


def train_validation_split(
    target: np.ndarray,
    *,
    stratify: bool,
    fraction: float,
    seed: int,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted positions (train, validation).

    With ``groups``, whole groups go to validation (see :func:`group_split`).

    With ``stratify``, every class with at least two rows puts about ``fraction``
    of its rows into validation, at least one and never all; a class with one
    row stays in training (validation can then be empty: the caller decides).
    Without, a plain shuffled split with >= 1 row on each side.
    """
    if groups is not None:
        return group_split(target, groups, stratify=stratify, fraction=fraction, seed=seed)
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
    target: np.ndarray,
    *,
    folds: int,
    stratify: bool,
    seed: int,
    groups: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``folds`` (train, held-out) pairs of sorted positions; every row is held out once.

    Stratified folds keep each class's share in every fold; a class with fewer rows
    than folds is spread as far as it goes (scikit-learn's StratifiedKFold). With
    ``groups``, each group is held out in one fold (StratifiedGroupKFold for classes,
    GroupKFold otherwise, both shuffled by the seed); there must be at least ``folds``
    groups.
    """
    from sklearn.model_selection import (
        GroupKFold,
        KFold,
        StratifiedGroupKFold,
        StratifiedKFold,
    )

    rows = len(target)
    if folds > rows:
        raise ValueError(f"{folds} folds need at least {folds} rows, got {rows}")
    random_state = int(numpy_rng(seed, stream=4).integers(2**31 - 1))
    if groups is not None:
        count = group_count(groups)
        if folds > count:
            raise ValueError(f"{folds} folds need at least {folds} groups, got {count}")
        splitter = (StratifiedGroupKFold if stratify else GroupKFold)(
            n_splits=folds, shuffle=True, random_state=random_state
        )
    else:
        splitter = (StratifiedKFold if stratify else KFold)(
            n_splits=folds, shuffle=True, random_state=random_state
        )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        pairs = splitter.split(np.zeros(rows), target, groups)
        return [(np.sort(a), np.sort(b)) for a, b in pairs]


def group_count(groups: np.ndarray) -> int:
    """How many distinct groups ``groups`` (one value per row) holds."""
    return len(np.unique(groups))


def group_split(
    target: np.ndarray, groups: np.ndarray, *, stratify: bool, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted positions (train, validation) with every group on one side.

    The groups are taken in a seeded random order, and each joins validation when that
    brings validation closer to ``fraction`` of the rows: of every class's rows with
    ``stratify`` (each class weighed by its size, so a small class counts as much as a
    large one), else of all rows. Greedy, as scikit-learn's StratifiedGroupKFold is;
    the shares hold roughly, as closely as the groups' sizes allow. At least one group
    is on each side; ValueError for fewer than two groups.

    >>> target = np.array([0, 0, 1, 1, 0, 1, 0, 1])
    >>> speakers = np.array(["ann", "ann", "bob", "bob", "cy", "cy", "dee", "dee"])
    >>> train, validation = group_split(target, speakers, stratify=True, fraction=0.25, seed=0)
    >>> sorted(set(speakers[validation]) & set(speakers[train]))
    []
    """
    names, codes = np.unique(groups, return_inverse=True)
    if len(names) < 2:
        raise ValueError(f"a grouped split needs at least 2 groups, got {len(names)}")
    if stratify:
        _, labels = np.unique(target, return_inverse=True)
        counts = np.zeros((len(names), labels.max() + 1))  # (groups, classes) rows
        np.add.at(counts, (codes, labels), 1)
    else:
        counts = np.bincount(codes, minlength=len(names)).astype(float)[:, None]  # (groups, 1)
    totals = counts.sum(axis=0)
    goal, scale = totals * fraction, 1.0 / np.maximum(totals, 1)
    held = np.zeros_like(goal)
    order = numpy_rng(seed, stream=2).permutation(len(names))
    chosen = []
    for group in order:
        # squared relative miss of every class's share, without and with this group
        if (
            np.square((held + counts[group] - goal) * scale).sum()
            < np.square((held - goal) * scale).sum()
        ):
            chosen.append(group)
            held += counts[group]
    if not chosen:  # a fraction smaller than any group: the first group still goes
        chosen = [order[0]]
    if len(chosen) == len(names):  # and one group always trains
        chosen = chosen[:-1]
    validation = np.isin(codes, chosen)
    return np.flatnonzero(~validation), np.flatnonzero(validation)
