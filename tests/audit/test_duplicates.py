"""Duplicates and leakage planted in a real table (wine, scikit-learn) are all found, and
none are reported where there are none."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepstrata.audit.duplicates import duplicates, leakage


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    frame["cellar"] = np.where(np.arange(len(frame)) % 3 == 0, "north", "south")
    return frame


def inputs(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c != "target"]


def test_a_clean_real_table_has_none(wine):
    found = duplicates(wine, inputs(wine), target="target")
    assert found["exact"]["rows"] == 0 and found["near"]["pairs_found"] == 0


def test_planted_exact_and_near_duplicates_are_all_found(wine):
    rng = np.random.default_rng(0)
    exact_source = rng.choice(len(wine), 12, replace=False)
    near_source = rng.choice(np.setdiff1d(np.arange(len(wine)), exact_source), 8, replace=False)
    exact = wine.iloc[exact_source].copy()
    exact.loc[exact.index[:4], "target"] = "barbera"  # some copies with another label
    near = wine.iloc[near_source].copy()
    numbers = near.columns[:13]
    near[numbers] = near[numbers] * (1 + rng.normal(0, 1e-4, near[numbers].shape))
    frame = pd.concat([wine, exact, near], ignore_index=True)
    found = duplicates(frame, inputs(frame), target="target")
    groups = found["exact"]["groups"]
    assert found["exact"]["rows"] == 12 and len(groups) == 12
    assert sorted(g["rows"][0] - 1 for g in groups) == sorted(exact_source)
    assert {g["rows"][1] for g in groups} == set(range(len(wine) + 1, len(wine) + 13))
    conflicting = sum(len(g["labels"]) > 1 for g in groups)
    assert found["exact"]["conflicting_groups"] == conflicting >= 1
    pairs = {tuple(p["rows"]) for p in found["near"]["pairs"]}
    assert pairs == {(s + 1, len(wine) + 13 + k) for k, s in enumerate(near_source)}
    # another category is not a near duplicate, whatever the numbers
    moved = wine.iloc[near_source[:1]].assign(cellar="east")
    assert duplicates(pd.concat([wine, moved]), inputs(wine))["near"]["pairs_found"] == 0


def test_train_test_leakage_is_all_found(wine):
    rng = np.random.default_rng(1)
    order = rng.permutation(len(wine))
    train, test = wine.iloc[order[:130]].reset_index(drop=True), wine.iloc[order[130:]]
    leaked_exact = train.sample(7, random_state=0)
    leaked_near = train.sample(5, random_state=1).copy()
    leaked_near["alcohol"] = leaked_near["alcohol"] + 1e-4
    test = pd.concat([test, leaked_exact, leaked_near], ignore_index=True)
    found = leakage(train, test, inputs(wine))
    assert found["test_rows"] == len(test)
    assert found["exact"]["test_rows"] == list(range(len(test) - 11, len(test) - 4))
    assert sorted(p["test_row"] for p in found["near"]["pairs"]) == list(
        range(len(test) - 4, len(test) + 1)
    )
    assert {p["train_row"] - 1 for p in found["near"]["pairs"]} == set(leaked_near.index)
