"""Gradient SHAP (Captum) on networks: the values add up to f(x) - f(baseline) in
expectation, and it is refused (named) for a model with a classical member."""

from __future__ import annotations

import numpy as np
import pytest

from deepstrata.errors import ConfigError
from deepstrata.explain import explain
from tests.conftest import torch_threads
from tests.explain.conftest import away_from_baseline, two_column_frame

pytest.importorskip("captum", reason="the explain extra (captum) is not installed")


def test_gradient_shap_adds_up_in_expectation(regression_model):
    rows = away_from_baseline(two_column_frame(seed=4), rows=20)
    with torch_threads(1):
        explanation = explain(regression_model, rows, method="gradshap", samples=200)
    change = explanation.predictions - explanation.base_values
    gap = np.abs(explanation.values.sum(axis=1) - change).sum() / np.abs(change).sum()
    assert gap < 0.1
    assert explanation.settings["samples"] == 200
    assert "completeness_gap" not in explanation.faithfulness  # a Monte-Carlo estimate


def test_gradient_shap_needs_networks_only(ensemble_model):
    if all(hasattr(m, "network") for m in ensemble_model.members):
        pytest.skip("the ensemble kept the network alone")
    with pytest.raises(ConfigError, match="gradient SHAP needs every member"):
        explain(ensemble_model, two_column_frame(seed=1).head(3), method="gradshap")
