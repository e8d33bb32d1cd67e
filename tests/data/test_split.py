import numpy as np
import pytest

from deepstrata.data.split import kfold_split, train_validation_split
from deepstrata.seeding import numpy_rng


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5, 0.9])
def test_stratified_split_keeps_every_class_on_both_sides(fraction):
    target = np.array([0] * 2 + [1] * 5 + [2] * 40)
    train, validation = train_validation_split(target, stratify=True, fraction=fraction, seed=0)
    assert set(target[train]) == {0, 1, 2} and set(target[validation]) == {0, 1, 2}
    assert len(np.intersect1d(train, validation)) == 0 and len(train) + len(validation) == len(
        target
    )


def test_single_row_classes_stay_in_training_and_the_split_is_seeded():
    target = np.array([0, 1, 1, 1, 1])
    train, validation = train_validation_split(target, stratify=True, fraction=0.5, seed=3)
    assert 0 in train and 0 not in validation
    again = train_validation_split(target, stratify=True, fraction=0.5, seed=3)
    assert np.array_equal(train, again[0]) and np.array_equal(validation, again[1])


def test_plain_split_has_rows_on_both_sides():
    train, validation = train_validation_split(np.zeros(2), stratify=False, fraction=0.9, seed=0)
    assert len(train) == 1 and len(validation) == 1


# -- groups --------------------------------------------------------------------------------


def _grouped(rows=600, groups=60, classes=3, seed=0):
    """A target and groups; a group's rows hold several classes (as a speaker says many words)."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, groups, rows)
    target = rng.integers(0, classes, rows)
    return target, np.array([f"speaker-{g}" for g in group])


@pytest.mark.parametrize("stratify", [True, False])
def test_a_grouped_split_keeps_every_group_on_one_side(stratify):
    target, groups = _grouped()
    train, validation = train_validation_split(
        target, stratify=stratify, fraction=0.2, seed=0, groups=groups
    )
    assert not set(groups[train]) & set(groups[validation])
    assert np.array_equal(np.sort(np.concatenate([train, validation])), np.arange(len(target)))
    assert 0.15 <= len(validation) / len(target) <= 0.25


def test_a_grouped_split_of_classes_is_still_roughly_stratified():
    target, groups = _grouped(rows=2000, groups=100)
    _, validation = train_validation_split(
        target, stratify=True, fraction=0.25, seed=1, groups=groups
    )
    shares = np.bincount(target[validation], minlength=3) / np.bincount(target)
    assert np.all(np.abs(shares - 0.25) < 0.05), shares


def test_a_grouped_split_is_seeded_and_needs_two_groups():
    target, groups = _grouped()
    first = train_validation_split(target, stratify=True, fraction=0.2, seed=5, groups=groups)
    again = train_validation_split(target, stratify=True, fraction=0.2, seed=5, groups=groups)
    other = train_validation_split(target, stratify=True, fraction=0.2, seed=6, groups=groups)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[1], other[1])
    one = np.array(["ann"] * 10)
    with pytest.raises(ValueError, match="at least 2 groups, got 1"):
        train_validation_split(np.arange(10) % 2, stratify=True, fraction=0.2, seed=0, groups=one)


def test_two_groups_split_one_each_way_whatever_the_fraction():
    target, groups = np.array([0, 1] * 5), np.array(["a"] * 5 + ["b"] * 5)
    for fraction in (0.01, 0.5, 0.99):
        train, validation = train_validation_split(
            target, stratify=True, fraction=fraction, seed=0, groups=groups
        )
        assert len(set(groups[train])) == 1 and len(set(groups[validation])) == 1


@pytest.mark.parametrize("stratify", [True, False])
def test_grouped_folds_hold_each_group_out_once(stratify):
    target, groups = _grouped()
    folds = kfold_split(target, folds=5, stratify=stratify, seed=0, groups=groups)
    held = np.concatenate([rows for _, rows in folds])
    assert np.array_equal(np.sort(held), np.arange(len(target)))  # every row once
    for train, rows in folds:
        assert not set(groups[train]) & set(groups[rows])
    assert all(abs(len(rows) - 120) < 40 for _, rows in folds)
    again = kfold_split(target, folds=5, stratify=stratify, seed=0, groups=groups)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))


def test_grouped_folds_need_as_many_groups_as_folds():
    with pytest.raises(ValueError, match="5 folds need at least 5 groups, got 3"):
        kfold_split(np.zeros(30), folds=5, stratify=False, seed=0, groups=np.arange(30) % 3)


def _legacy_split(target, *, stratify, fraction, seed):
    """train_validation_split as it was before groups (the reference it must still match)."""
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
    return np.setdiff1d(np.arange(rows), validation), validation


@pytest.mark.parametrize("stratify", [True, False])
@pytest.mark.parametrize("seed", [0, 7])
def test_without_groups_the_splits_are_what_they_were(stratify, seed):
    from sklearn.model_selection import KFold, StratifiedKFold

    target, _ = _grouped(rows=97)
    got = train_validation_split(target, stratify=stratify, fraction=0.3, seed=seed)
    expected = _legacy_split(target, stratify=stratify, fraction=0.3, seed=seed)
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))
    state = int(numpy_rng(seed, stream=4).integers(2**31 - 1))
    splitter = (StratifiedKFold if stratify else KFold)(
        n_splits=4, shuffle=True, random_state=state
    )
    reference = [np.sort(rows) for _, rows in splitter.split(np.zeros(97), target)]
    folds = kfold_split(target, folds=4, stratify=stratify, seed=seed)
    assert all(np.array_equal(rows, ref) for (_, rows), ref in zip(folds, reference))
