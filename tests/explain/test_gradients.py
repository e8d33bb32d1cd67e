"""Integrated gradients: completeness within 1 % on every table kind, and the torch
probabilities they differentiate agree with the tasks' NumPy ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import deepstrata
from deepstrata import tasks
from deepstrata.explain import explain
from deepstrata.explain.gradients import probabilities
from tests.conftest import make_churn_frame, torch_threads
from tests.explain.conftest import two_column_frame

pytest.importorskip("captum", reason="the explain extra (captum) is not installed")


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_torch_probabilities_match_the_tasks(task):
    spec = tasks.get(task)
    raw = torch.randn(6) if task == "binary" else torch.randn(6, 3)
    expected = spec.probabilities(raw.numpy())
    np.testing.assert_allclose(probabilities(spec, raw).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_completeness_on_every_table_kind(fitted_churn_bundle):
    """Numbers with missing flags, a category's embedding, a boolean, a date's cyclic
    encodings: the summed attributions add up to f(x) - f(baseline) within 1 %."""
    model = deepstrata.load(fitted_churn_bundle)
    rows = make_churn_frame(seed=5).head(40)
    with torch_threads(1):
        explanation = explain(model, rows, method="ig", steps=50, faithfulness=True)
    assert explanation.faithfulness["completeness_gap"] < 0.01
    change = explanation.predictions - explanation.base_values
    np.testing.assert_allclose(explanation.values.sum(axis=1), change, atol=0.01)
    assert explanation.settings["steps"] == 50
    assert explanation.settings["baselines"]["plan"].startswith("most frequent training category")
    assert explanation.settings["baselines"]["tenure"].startswith("training median")
    # every column gets an attribution of its own, summed over its block
    assert explanation.values.shape == (40, 5)
    assert (np.abs(explanation.values) > 0).all(axis=0).any()


def test_completeness_for_regression_in_the_targets_units(regression_model):
    rows = two_column_frame(seed=6).drop(columns="y").head(30)
    with torch_threads(1):
        explanation = explain(regression_model, rows, method="ig", faithfulness=False)
    change = explanation.predictions - explanation.base_values
    np.testing.assert_allclose(explanation.values.sum(axis=1), change, rtol=0.01, atol=1e-3)
    # the target is 2 x1 + 1.5 x2 (in its own units): the attributions follow
    median = regression_model.preprocessors["x1"].center
    expected = 2 * (rows.x1 - median)  # a network's fit of the line, not the line
    np.testing.assert_allclose(explanation.values[:, 0], expected, atol=0.6)
    assert np.corrcoef(explanation.values[:, 0], expected)[0, 1] > 0.98
