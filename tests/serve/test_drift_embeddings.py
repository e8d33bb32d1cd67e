"""Text columns in serve's drift window: the vectors of the server's own forward pass,
tested by MMD on ``/drift`` and ``/metrics``; a column that cannot be watched is listed
with the reason, and the bundle still serves."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

import deepstrata
from deepstrata.data.sources import read_table
from deepstrata.model.reference import REFERENCE, column_embeddings, projection
from deepstrata.serve import drift as served_drift
from deepstrata.serve.drift import DriftWindow
from deepstrata.serve.predictor import Predictor
from deepstrata.serve.records import Rows
from tests.serve.conftest import records_of, serving

USUAL = ["good", "great", "fine", "nice", "happy", "fast", "cheap", "solid"]
OTHER = ["broken", "late", "awful", "refund"]  # words the model never saw


def _reviews(rng, rows: int, words: list[str]) -> pd.DataFrame:
    texts = [" ".join(rng.choice(words, 6)) for _ in range(rows)]
    return pd.DataFrame({"review": texts, "stars": rng.integers(1, 6, rows).astype(float)})


@pytest.fixture(scope="module")
def review_model():
    rng = np.random.default_rng(0)
    training = _reviews(rng, 120, USUAL)
    training["liked"] = np.where(training["stars"] > 3, "yes", "no")
    return deepstrata.fit(
        training,
        target="liked",
        strategy="scratch",
        ensemble=False,
        max_epochs=1,
        learning_rate=3e-3,
        progress=False,
    )  # fmt: skip (a fixed rate: no range test)


def _send(client, frame: pd.DataFrame, chunk: int = 50) -> None:
    records = records_of(frame)
    for start in range(0, len(records), chunk):
        body = {"records": records[start : start + chunk]}
        assert client.post("/predict", json=body).status_code == 200


def test_reviews_in_other_words_are_flagged_and_a_resample_is_not(review_model, monkeypatch):
    tested = []
    counted = served_drift.projected_drift
    monkeypatch.setattr(
        served_drift, "projected_drift", lambda *a, **k: tested.append(1) or counted(*a, **k)
    )
    rng = np.random.default_rng(1)
    with serving(review_model) as client:
        _send(client, _reviews(rng, 150, USUAL))
        calm = client.get("/drift").json()
        review = {c["column"]: c for c in calm["columns"]}["review"]
        # the warm-up's passes (blank rows) are not in the window: the 150 rows sent are
        assert review["test"] == "mmd" and review["rows"] == 150 and review["psi"] is None
        assert calm["drifted"] == [] and calm["not_watched"] == [], calm
        assert client.get("/drift").json() == calm and len(tested) == 1  # kept until rows come
        _send(client, _reviews(rng, 300, OTHER), chunk=10)
        moved = client.get("/drift").json()
        text = client.get("/metrics").text
    assert moved["window"] == 450 and moved["drifted"] == ["review"], moved
    assert len(tested) == 2  # the scrape after /drift reused its test
    review = {c["column"]: c for c in moved["columns"]}["review"]
    assert review["rows"] == 200 and review["mean_shift"] > 0.5 and review["p_value"] < 0.01
    assert 'deepstrata_drift_detected{column="review"} 1.0' in text
    assert 'deepstrata_drift_detected{column="stars"} 0.0' in text
    assert 'deepstrata_drift_statistic{column="review",test="mmd"}' in text
    assert 'deepstrata_drift_psi{column="review"}' not in text  # no bins, no PSI


def test_a_bundle_without_the_vectors_serves_and_says_why_the_column_is_not_watched(
    review_model,
):
    model = copy.copy(review_model)
    reference = json.loads(review_model.artifacts[REFERENCE])
    del reference["columns"]["review"]  # as a reference kept before the column's vectors
    model.artifacts = {**review_model.artifacts, REFERENCE: json.dumps(reference).encode()}
    with serving(model) as client:
        _send(client, _reviews(np.random.default_rng(2), 60, OTHER))
        answer = client.get("/drift").json()
        assert 'deepstrata_drift_detected{column="stars"}' in client.get("/metrics").text
    assert [c["column"] for c in answer["columns"]] == ["stars"]
    (missing,) = answer["not_watched"]
    assert missing["column"] == "review" and missing["kind"] == "text"
    assert "keeps no encoder vectors" in missing["reason"]


def test_a_network_without_torch_encoders_is_not_watched_with_the_reason(review_model):
    member = dataclasses.replace(review_model.members[0], network=torch.nn.Identity())
    model = copy.copy(review_model)
    model.members = [member]  # as the ONNX backend swaps the network for a session
    window = DriftWindow.of(model)
    assert window.vectors == {} and window.watching(len) is len
    (missing,) = window.not_watched
    assert missing["column"] == "review" and "ONNX" in missing["reason"]


def test_the_window_takes_the_vectors_the_reference_was_made_of(review_model):
    """The served pass's vectors, projected, are the ones ``fit`` kept for the reference
    (the same encoder slice, the same matrix); passes outside the batcher are not taken."""
    rows = _reviews(np.random.default_rng(3), 5, USUAL + OTHER)
    predictor = Predictor(review_model)
    window = DriftWindow.of(predictor.model)
    window.attach()
    try:
        values = Rows({name: list(rows[name]) for name in rows.columns}, len(rows))
        predictor.outputs(values)  # not the batcher's pass: not taken
        assert len(window.vectors["review"]) == 0
        window.watching(predictor.outputs)(values)
    finally:
        window.detach()
    entry = json.loads(review_model.artifacts[REFERENCE])["columns"]["review"]
    table = read_table(rows)
    raw = column_embeddings(review_model.members[0], table.frame, table, ["review"])["review"]
    expected = raw @ projection(entry["width"], entry["seed"])
    np.testing.assert_allclose(np.stack(window.vectors["review"]), expected, rtol=1e-6, atol=1e-9)
