"""The forest head: its NumPy tree walk against scikit-learn's own predictions.

The contract every head keeps (shapes, state round trip, seeds, bad inputs) runs
over it in test_heads.py; here, what is particular to storing trees as arrays.
"""

from __future__ import annotations

import numpy as np
import pytest

from deepstrata.classical import new_head
from deepstrata.classical.forest import PROBABILITY_FLOOR
from deepstrata.errors import ConfigError
from deepstrata.tasks import probabilities
from tests.classical.conftest import load_split

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _sklearn(task: str, extra_trees: bool, **settings):
    from sklearn import ensemble

    regression = task == "regression"
    name = ("ExtraTrees" if extra_trees else "RandomForest") + (
        "Regressor" if regression else "Classifier"
    )
    max_features = 1.0 if regression else "sqrt"
    return getattr(ensemble, name)(random_state=0, n_jobs=1, max_features=max_features, **settings)


@pytest.mark.parametrize("extra_trees", [False, True])
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_the_tree_walk_gives_scikit_learns_predictions(task, extra_trees):
    split = load_split(task)
    settings = {"n_estimators": 25, "min_samples_leaf": 2}
    head = new_head(
        "forest", task=task, num_classes=split.num_classes, extra_trees=extra_trees, **settings
    ).fit(*split.train)
    reference = _sklearn(task, extra_trees, **settings).fit(*split.train)
    features = split.test[0]
    outputs = head.outputs(features)
    if task == "regression":
        np.testing.assert_allclose(outputs, reference.predict(features), rtol=1e-12, atol=1e-12)
        return
    expected = np.maximum(reference.predict_proba(features), PROBABILITY_FLOOR)
    expected = expected / expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities(task, outputs), expected, rtol=1e-9, atol=1e-12)


def test_a_threshold_value_goes_left_as_in_scikit_learn():
    # Rows exactly on a split threshold (float32-rounded, as scikit-learn compares).
    split = load_split("binary")
    head = new_head("forest", task="binary", num_classes=2, n_estimators=5).fit(*split.train)
    reference = _sklearn("binary", False, n_estimators=5).fit(*split.train)
    inner = head.left_ != -1
    rows = np.tile(split.test[0][:1], (20, 1))
    for index, node in enumerate(np.flatnonzero(inner)[:20]):
        rows[index, head.feature_[node]] = np.float32(head.threshold_[node])
    expected = np.maximum(reference.predict_proba(rows), PROBABILITY_FLOOR)
    expected = expected / expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities("binary", head.outputs(rows)), expected, rtol=1e-9)


def test_outputs_are_finite_when_every_tree_is_certain():
    features = np.array([[0.0], [1.0], [2.0], [3.0]] * 5)
    target = np.array([0, 0, 1, 1] * 5)
    outputs = (
        new_head("forest", task="binary", n_estimators=10).fit(features, target).outputs(features)
    )
    assert np.isfinite(outputs).all()
    np.testing.assert_allclose(np.abs(outputs), np.log(1 / PROBABILITY_FLOOR))


def test_bad_hyperparameters_name_the_option():
    split = load_split("binary")
    for option, value in (("n_estimators", 0), ("min_samples_leaf", 0), ("max_depth", 0)):
        with pytest.raises(ConfigError) as error:
            new_head("forest", task="binary", **{option: value}).fit(*split.train)
        assert error.value.option == option


def _tamper(arrays: dict, name: str, change) -> dict:
    changed = {key: value.copy() for key, value in arrays.items()}
    change(changed[name])
    return changed


def _first_inner(arrays: dict) -> int:
    return int(np.flatnonzero(arrays["left"] != -1)[0])


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("left", lambda a: a.__setitem__(0, 0), "after its parent"),  # a loop: would never end
        ("right", lambda a: a.__setitem__(0, -5), "after its parent"),
        ("left", lambda a: a.__setitem__(0, 10**6), "after its parent"),
        ("feature", lambda a: a.__setitem__(0, -1), "feature outside"),
        ("feature", lambda a: a.__setitem__(0, 10**6), "feature outside"),
        ("roots", lambda a: a.__setitem__(0, 10**6), "root outside"),
        ("value", lambda a: a.__setitem__(0, np.nan), "not finite"),
        ("threshold", lambda a: a.__setitem__(0, np.nan), "NaN threshold"),
    ],
)
def test_tampered_trees_are_refused_at_load(name, change, message):
    from deepstrata.classical import head_from_state

    split = load_split("multiclass")
    head = new_head("forest", task="multiclass", num_classes=split.num_classes, seed=0)
    head.fit(*split.train)
    meta, arrays = head.state()
    assert _first_inner(arrays) == 0  # node 0 is the first tree's root, an inner node
    with pytest.raises(ValueError, match=message):
        head_from_state(meta, _tamper(arrays, name, change))
    head_from_state(meta, arrays)  # untouched, it loads
