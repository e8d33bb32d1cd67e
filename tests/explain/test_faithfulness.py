"""Faithfulness measures: attribution order beats random order on the deletion and
insertion curves, and the model-randomisation check tells a model-blind method apart."""

from __future__ import annotations

import numpy as np
import pytest

from deepstrata.data.sources import read_table
from deepstrata.explain import explain
from deepstrata.explain.faithfulness import (
    curves,
    randomisation,
    randomised_model,
    rank_agreement,
)
from deepstrata.explain.target import Target
from tests.conftest import torch_threads
from tests.explain.conftest import away_from_baseline, two_column_frame

pytest.importorskip("captum", reason="the explain extra (captum) is not installed")


@pytest.mark.parametrize("method", ["ig", "exact", "permutation"])
def test_attribution_order_beats_random_order(regression_model, method):
    rows = away_from_baseline(two_column_frame(seed=11), rows=40)
    with torch_threads(1):
        explanation = explain(regression_model, rows, method=method)
    measured = explanation.faithfulness
    # regression: the value falls fastest when the most supportive columns go first
    assert measured["deletion_area"] < measured["deletion_area_random"]
    assert measured["insertion_area"] > measured["insertion_area_random"]
    assert measured["randomisation_passed"], measured["randomisation_rank_correlation"]


def test_a_curve_starts_at_the_prediction_and_ends_at_the_baseline(regression_model):
    rows = two_column_frame(seed=12).drop(columns="y").head(6)
    target = Target(regression_model, read_table(rows))
    from deepstrata.explain.faithfulness import _curve

    order = np.tile(np.arange(5), (6, 1))
    deletion = _curve(target, np.arange(6), order, insert=False)
    insertion = _curve(target, np.arange(6), order, insert=True)
    np.testing.assert_allclose(deletion[:, 0], target.predictions, rtol=1e-6)
    np.testing.assert_allclose(deletion[:, -1], target.base, rtol=1e-6)
    np.testing.assert_allclose(insertion[:, 0], target.base, rtol=1e-6)
    np.testing.assert_allclose(insertion[:, -1], target.predictions, rtol=1e-6)
    assert curves(target, np.zeros((6, 5)))["rows"] == 6


def test_randomised_weights_differ_and_the_model_is_left_alone(regression_model):
    before = {k: v.clone() for k, v in regression_model.network.state_dict().items()}
    clone = randomised_model(regression_model, seed=0)
    after = clone.network.state_dict()
    assert any(not torch_equal(before[k], after[k]) for k in before)
    assert all(torch_equal(before[k], v) for k, v in regression_model.network.state_dict().items())


def test_a_method_blind_to_the_model_fails_the_randomisation_check(regression_model):
    """An 'explanation' that is the input itself (|x|) does not change with the weights."""
    rows = two_column_frame(seed=13).drop(columns="y").head(30)
    table = read_table(rows)
    blind = np.abs(rows[["x1", "x2", "n1", "n2"]].to_numpy())
    blind = np.hstack([blind, np.zeros((30, 1))])
    result = randomisation(
        lambda model, subset, classes: blind, regression_model, table, blind, None
    )
    assert result["randomisation_rank_correlation"] == pytest.approx(1.0)
    assert not result["randomisation_passed"]


def test_rank_agreement():
    a = np.array([[1.0, 2, 3], [3, 2, 1]])
    assert rank_agreement(a, a) == pytest.approx(1.0)
    assert rank_agreement(a, -a) == pytest.approx(-1.0)
    assert np.isnan(rank_agreement(np.ones((2, 3)), a))


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))
