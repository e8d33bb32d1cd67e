import numpy as np
import pytest

from deepstrata.data.split import train_validation_split


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
