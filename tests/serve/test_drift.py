"""``GET /drift`` and the drift gauges on ``/metrics``: the window of the latest requests
against the training rows, token-protected; a bundle without the reference still serves."""

from __future__ import annotations

import deepstrata
from deepstrata.model.reference import REFERENCE
from deepstrata.serve.drift import MIN_ROWS, DriftWindow
from tests.conftest import make_churn_frame
from tests.serve.conftest import records_of, serving

TOKEN = "correct-horse-battery-staple"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def _rows(seed: int, shift: float = 0.0) -> list[dict]:
    frame = make_churn_frame(seed=seed).drop(columns=["churned", "customer_id"])
    frame["monthly"] += shift
    return records_of(frame)


def test_the_window_flags_a_moved_column_on_drift_and_metrics(churn_model):
    with serving(churn_model, token=TOKEN) as client:
        assert client.get("/drift").status_code == 401  # behind the token like /predict
        early = client.get("/drift", headers=AUTH).json()
        assert early["window"] == 0 and not early["drift"] and "note" in early
        records = _rows(seed=11)
        for start in range(0, len(records), 50):
            chunk = {"records": records[start : start + 50]}
            assert client.post("/predict", json=chunk, headers=AUTH).status_code == 200
        calm = client.get("/drift", headers=AUTH).json()
        assert calm["window"] == len(records) and calm["drifted"] == [], calm
        for seed in range(5):  # the window's 1000 rows, all moved (5 tables of 200 rows)
            moved = _rows(seed=20 + seed, shift=20)
            for start in range(0, len(moved), 100):
                chunk = {"records": moved[start : start + 100]}
                assert client.post("/predict", json=chunk, headers=AUTH).status_code == 200
        moved = client.get("/drift", headers=AUTH).json()
        assert moved["window"] == 1000 and moved["seen"] == len(records) + 1000
        assert moved["drifted"] == ["monthly"], moved
        text = client.get("/metrics", headers=AUTH).text
    assert 'deepstrata_drift_detected{column="monthly"} 1.0' in text
    assert 'deepstrata_drift_detected{column="plan"} 0.0' in text
    assert 'deepstrata_drift_psi{column="prediction"}' in text
    assert "deepstrata_drift_window_rows 1000.0" in text
    assert 'endpoint="/drift"' in text


def test_a_bundle_without_the_reference_serves_and_says_why_drift_is_missing(churn_bundle):
    model = deepstrata.load(churn_bundle)  # a private copy: the session's model stays whole
    del model.artifacts[REFERENCE]  # as a bundle of an earlier release loads
    with serving(model) as client:
        answer = client.get("/drift")
        assert answer.status_code == 404
        assert "refit" in answer.json()["error"]["message"]
        assert "deepstrata_drift" not in client.get("/metrics").text


def test_observing_is_cheap_and_bounded():
    reference = {
        "columns": {"x": {"kind": "number", "statistic": "numeric", "edges": [0.0],
                          "shares": [0.5, 0.5], "missing": 0.0, "sample": [-1.0, 1.0]}},
        "prediction": None,
    }  # fmt: skip
    window = DriftWindow(reference, size=100)
    for _ in range(30):
        window.observe({"x": [0.5] * 10}, ["a"] * 10)
    assert len(window.columns["x"]) == 100 and window.seen == 300
    assert window.report()["window"] == 100 >= MIN_ROWS
