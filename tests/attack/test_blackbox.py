"""HopSkipJump through ART's BlackBoxClassifier: queries only, number columns in IQR units."""

from __future__ import annotations

import pytest

import deepstrata
from deepstrata.attack import blackbox
from deepstrata.attack.run import run_attack
from tests.conftest import make_churn_frame, torch_threads

pytest.importorskip("art", reason="the attack extra is not installed")


def test_hopskipjump_finds_flips_on_number_columns(fitted_churn_bundle, monkeypatch):
    monkeypatch.setattr(blackbox, "MAX_ITERATIONS", 3)
    monkeypatch.setattr(blackbox, "MAX_EVALUATIONS", 40)
    model = deepstrata.load(fitted_churn_bundle)
    frame = make_churn_frame(rows=40, seed=11)
    frame = frame[frame["tenure"].notna()].head(4)
    with torch_threads(1):
        result = run_attack(model, frame, attack="hopskipjump", epsilons="0.01,1", progress=False)
    assert result["units"] == {
        "number": "fraction of each column's inter-quartile range (raw units)"
    }
    small, large = result["epsilons"]
    assert result["clean_accuracy"] >= small["robust_accuracy"] >= large["robust_accuracy"]
    assert large["success_rate"] > 0  # one IQR flips some row
    changed = result["examples"][0]["numbers"]
    assert {n["column"] for n in changed} == {"tenure", "monthly"}
