"""Partial dependence of the top numeric columns follows the function the model learnt."""

from __future__ import annotations

import numpy as np

from deepstrata.explain import explain
from tests.conftest import torch_threads
from tests.explain.conftest import two_column_frame


def test_partial_dependence_of_a_linear_target(regression_model, classifier_model):
    rows = two_column_frame(seed=14).drop(columns="y").head(40)
    with torch_threads(1):
        explanation = explain(regression_model, rows, method="exact", faithfulness=False)
    dependence = explanation.dependence
    assert dependence["class"] is None
    assert list(dependence)[1:3] in (["x1", "x2"], ["x2", "x1"])  # the top numeric ones
    assert "c1" not in dependence  # a category has no numeric grid
    for column, slope in (("x1", 2.0), ("x2", 1.5)):  # y = 2 x1 + 1.5 x2
        grid, mean = dependence[column]["values"], dependence[column]["mean"]
        assert len(grid) == 10 and grid == sorted(grid)
        fitted = np.polyfit(grid, mean, 1)[0]
        assert abs(fitted - slope) < 0.35, (column, fitted)
    with torch_threads(1):
        classified = explain(classifier_model, rows, method="permutation", faithfulness=False)
    chosen = classified.dependence["class"]
    assert chosen in ("yes", "no")
    curve = classified.dependence["x1"]["mean"]
    assert (curve[-1] > curve[0]) == (chosen == "yes")  # x1 + x2 > 0 means yes
