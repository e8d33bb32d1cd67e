"""An Explanation's table, its JSON and its global importance with a bootstrap interval."""

from __future__ import annotations

import json

import numpy as np

from deepstrata.explain.explanation import Explanation


def make(rows: int = 200, seed: int = 0) -> Explanation:
    rng = np.random.default_rng(seed)
    values = rng.normal(0, [3.0, 1.0, 0.1], (rows, 3))
    return Explanation(
        method="exact",
        columns=["a", "b", "c"],
        values=values,
        base_values=np.full(rows, 0.5),
        predictions=0.5 + values.sum(axis=1),
        rows=np.arange(rows),
        classes=["yes"] * rows,
        settings={"coalitions": 8},
    )


def test_global_importance_has_a_bootstrap_interval_around_the_mean():
    explanation = make()
    importance = explanation.global_importance(seed=1)
    assert importance.column.tolist() == ["a", "b", "c"]
    means = np.abs(explanation.values).mean(axis=0)
    np.testing.assert_allclose(importance.importance, means)
    assert (importance.low < importance.importance).all()
    assert (importance.importance < importance.high).all()
    # the interval narrows with more rows
    wide = make(rows=50).global_importance()
    narrow = make(rows=2000).global_importance()
    assert (narrow.high - narrow.low).iloc[0] < (wide.high - wide.low).iloc[0]


def test_frame_and_json():
    explanation = make(rows=4)
    frame = explanation.frame()
    assert frame.columns.tolist() == ["row", "class", "prediction", "base_value", "a", "b", "c"]
    document = json.loads(json.dumps(explanation.to_dict()))
    assert document["method"] == "exact"
    assert document["rows"][0]["attributions"]["a"] == explanation.values[0, 0]
    assert document["global_importance"][0]["column"] == "a"
