"""The explained function is the model's own prediction, members mixed and calibrated;
columns are kept or replaced whole."""

from __future__ import annotations

import numpy as np

from deepstrata.data.sources import read_table
from deepstrata.explain import explain
from deepstrata.explain.target import Target
from deepstrata.model.model import Model
from tests.conftest import make_churn_frame, torch_threads
from tests.explain.conftest import two_column_frame


def test_all_kept_is_the_prediction_and_all_replaced_the_baseline(fitted_churn_bundle):
    import deepstrata

    model = deepstrata.load(fitted_churn_bundle)
    frame = make_churn_frame(seed=9).head(12)
    target = Target(model, read_table(frame))
    np.testing.assert_allclose(target.predictions, model.predict_proba(frame).max(axis=1), 1e-6)
    # every column at its baseline: one prediction, the explained class's probability
    for explained in set(target.classes):
        assert np.ptp(target.base[target.classes == explained]) < 1e-9
    baseline_row = frame.head(1).copy()
    pre = model.preprocessors
    baseline_row["tenure"] = pre["tenure"].center
    baseline_row["monthly"] = pre["monthly"].center
    baseline_row["plan"] = pre["plan"].vocabulary[0]
    # numbers and the category at their baseline by hand: the masked row agrees
    keep = np.array([[False, False, False, True, True]])
    masked = target.values(np.array([0]), keep)
    expected = model.predict_proba(baseline_row)[0, model.classes.index(target.class_names()[0])]
    np.testing.assert_allclose(masked, [expected], rtol=1e-5)
    assert target.baselines()["paperless"] == "neither true nor false"


def test_a_mixed_ensemble_is_explained_as_it_predicts(regression_model, ensemble_model):
    """A network and a classical member, weighted: exact Shapley values of the mix sum to
    its own prediction's change."""
    members = [regression_model.members[0], ensemble_model.members[-1]]
    mixed = Model(
        schema=regression_model.schema,
        members=members,
        target_encoder=regression_model.target_encoder,
        config=regression_model.config,
        weights=[0.3, 0.7],
    )
    rows = two_column_frame(seed=10).drop(columns="y").head(15)
    with torch_threads(1):
        explanation = explain(mixed, rows, method="exact")
    np.testing.assert_allclose(explanation.predictions, mixed.predict(rows), rtol=1e-5)
    assert explanation.faithfulness["completeness_gap"] < 1e-6
    assert "randomisation_passed" not in explanation.faithfulness  # a classical member
