"""Shapley values: the exact sum against a function whose values are known, KernelSHAP
(shap) against it on a 4-column model, and against shap's own exact explainer."""

from __future__ import annotations

import numpy as np
import pytest

import deepstrata
from deepstrata.explain import explain
from deepstrata.explain.shapley import coalitions, exact_shapley
from tests.conftest import torch_threads
from tests.explain.conftest import FIT, two_column_frame

shap = pytest.importorskip("shap", reason="the explain extra (shap) is not installed")


class Known:
    """A stand-in target: f(keep) = 3 k0 + k1 k2 (per row); Shapley values 3, .5, .5, 0."""

    columns = ("a", "b", "c", "d")
    rows = 2

    def values(self, rows, keep):
        keep = np.asarray(keep, dtype=float)
        return 3 * keep[:, 0] + keep[:, 1] * keep[:, 2]

    def of_row(self, row):
        return lambda masks: self.values(np.full(len(masks), row), masks)


def test_exact_values_of_a_known_function():
    values, settings = exact_shapley(Known())
    np.testing.assert_allclose(values, [[3, 0.5, 0.5, 0]] * 2, atol=1e-12)
    assert settings["coalitions"] == 16
    assert coalitions(3).sum(axis=0).tolist() == [4, 4, 4]


@pytest.fixture(scope="module")
def four_column_model():
    frame = two_column_frame(classes=True).drop(columns=["n2"])
    with torch_threads(1):
        return deepstrata.fit(frame, target="y", ensemble=False, **FIT)


def test_kernel_shap_equals_exact_shapley_on_four_columns(four_column_model):
    rows = two_column_frame(seed=7, classes=True).drop(columns=["y", "n2"]).head(25)
    with torch_threads(1):
        exact = explain(four_column_model, rows, method="exact", faithfulness=False)
        kernel = explain(four_column_model, rows, method="shap", faithfulness=False)
        sampled = explain(four_column_model, rows, method="shap", samples=10, faithfulness=False)
    np.testing.assert_allclose(kernel.values, exact.values, atol=1e-6)
    # fewer coalitions than the 14 there are: sampled, yet still summing to the change
    np.testing.assert_allclose(sampled.values.sum(axis=1), exact.values.sum(axis=1), atol=1e-6)
    assert kernel.settings["samples"] == 14 and sampled.settings["samples"] == 10


def test_kernel_shap_sums_to_the_change_from_the_baseline(regression_model):
    rows = two_column_frame(seed=8).drop(columns="y").head(10)
    with torch_threads(1):
        explanation = explain(regression_model, rows, method="shap", samples=20)
    assert explanation.faithfulness["completeness_gap"] < 1e-6


@pytest.mark.slow  # shap's Exact explainer compiles with numba first: ~15 s
def test_exact_shapley_agrees_with_shaps_exact_explainer():
    target = Known()
    masker = shap.maskers.Independent(np.zeros((1, 4)), max_samples=1)
    theirs = shap.explainers.Exact(target.of_row(0), masker)(np.ones((1, 4)), silent=True)
    np.testing.assert_allclose(exact_shapley(target)[0][0], theirs.values[0], atol=1e-12)
