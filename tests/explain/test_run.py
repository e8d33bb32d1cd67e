"""explain(): every method finds the two columns the target depends on; bad options are
named errors before any model runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepstrata.errors import ConfigError, DataError
from deepstrata.explain import METHODS, explain
from tests.conftest import torch_threads
from tests.explain.conftest import away_from_baseline, two_column_frame

pytest.importorskip("shap", reason="the explain extra (shap, captum, lime) is not installed")
pytest.importorskip("captum")
pytest.importorskip("lime")

SETTINGS = {"lime": {"samples": 300}, "shap": {"samples": 200}}


def share_ranking_x1_x2_first(explanation) -> float:
    top = explanation.top_columns(2)
    wanted = {explanation.columns.index("x1"), explanation.columns.index("x2")}
    return float(np.mean([set(row) == wanted for row in top]))


@pytest.mark.parametrize("method", sorted(set(METHODS) - {"tree"}))  # tree: test_treeshap.py
def test_every_method_ranks_the_two_columns_that_matter_first(regression_model, method):
    rows = away_from_baseline(two_column_frame(seed=1))
    with torch_threads(1):
        explanation = regression_model.explain(
            rows, method=method, faithfulness=False, **SETTINGS.get(method, {})
        )
    assert explanation.values.shape == (len(rows), 5)
    assert explanation.columns == ["x1", "x2", "n1", "n2", "c1"]
    assert share_ranking_x1_x2_first(explanation) >= 0.95
    importance = explanation.global_importance()
    assert set(importance.column[:2]) == {"x1", "x2"}


@pytest.mark.parametrize("method", ["shap", "exact", "lime", "permutation"])
def test_model_agnostic_methods_explain_the_ensemble_default(ensemble_model, method):
    rows = away_from_baseline(two_column_frame(seed=2), rows=30)
    with torch_threads(1):
        explanation = ensemble_model.explain(
            rows, method=method, faithfulness=False, **SETTINGS.get(method, {})
        )
    assert share_ranking_x1_x2_first(explanation) >= 0.95
    # the explained value is the model's own prediction
    np.testing.assert_allclose(explanation.predictions, ensemble_model.predict(rows), rtol=1e-5)


def test_predicted_class_probability_is_what_is_explained(classifier_model):
    rows = two_column_frame(seed=3, classes=True).drop(columns="y").head(20)
    with torch_threads(1):
        explanation = explain(classifier_model, rows, method="exact", faithfulness=False)
        probabilities = classifier_model.predict_proba(rows)
        predicted = classifier_model.predict(rows)
    assert explanation.classes == [str(p) for p in predicted]
    np.testing.assert_allclose(explanation.predictions, probabilities.max(axis=1), rtol=1e-5)
    chosen = explain(classifier_model, rows, method="exact", target_class="yes", faithfulness=False)
    yes = classifier_model.classes.index("yes")
    np.testing.assert_allclose(chosen.predictions, probabilities[:, yes], rtol=1e-5)


def test_rows_are_numbered_as_in_the_data(regression_model):
    rows = two_column_frame(seed=4).drop(columns="y").head(30)
    explanation = explain(
        regression_model, rows, method="permutation", rows=(10, 20), faithfulness=False
    )
    assert explanation.rows.tolist() == list(range(10, 20))
    np.testing.assert_allclose(
        explanation.predictions, regression_model.predict(rows.iloc[10:20]), rtol=1e-5
    )


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"method": "deeplift"}, ConfigError, "--method: unknown method 'deeplift'"),
        ({"method": "attention"}, ConfigError, "--method: attention needs a text column; this"),
        ({"rows": (25, 40)}, ConfigError, "--rows: rows 25:40 are outside the data (30 rows"),
        ({"rows": (5, 5)}, ConfigError, "--rows"),
        ({"max_rows": 10}, ConfigError, "--max-rows: 30 rows to explain, more than 10"),
        ({"target_class": "maybe"}, ConfigError, "--target-class"),
    ],
)
def test_bad_options_are_named_before_any_work(
    regression_model, monkeypatch, options, error, words
):
    import deepstrata.explain.run as run

    monkeypatch.setattr(run, "Target", _no_work)
    rows = two_column_frame().drop(columns="y").head(30)
    with pytest.raises(error, match=words.replace("(", r"\(").replace("'", "'")):
        explain(regression_model, rows, **options)


def test_a_missing_column_and_methods_that_do_not_apply(regression_model, ensemble_model):
    rows = two_column_frame().drop(columns=["y", "n2"]).head(5)
    with pytest.raises(DataError, match="input column 'n2' is missing"):
        explain(regression_model, rows)
    wide = pd.DataFrame({f"c{i}": [0.0] for i in range(11)})
    model = _Wide(regression_model, list(wide.columns))
    with pytest.raises(ConfigError, match="at most 10 input columns; this model has 11"):
        explain(model, wide, method="exact")
    if len(ensemble_model.members) > 1 or not hasattr(ensemble_model.members[0], "network"):
        with pytest.raises(ConfigError, match="needs every member to be a network"):
            explain(ensemble_model, rows, method="ig")


def _no_work(*args, **kwargs):
    raise AssertionError("the model ran before the options were checked")


class _Wide:
    """A model's surface with 11 input columns (the column check precedes any work)."""

    def __init__(self, model, names):
        from types import SimpleNamespace

        self.members = model.members
        self.schema = SimpleNamespace(inputs=[SimpleNamespace(name=n) for n in names])
