"""``POST /explain``: each record's attributions, summing to its prediction's change from
the baseline; the same validation, limits and token as /predict."""

from __future__ import annotations

import numpy as np
import pytest

from tests.serve.conftest import records_of, serving

pytestmark = pytest.mark.usefixtures("one_torch_thread")
pytest.importorskip("captum", reason="the explain extra is not installed")
pytest.importorskip("shap", reason="the explain extra is not installed")

TOKEN = "correct-horse-battery-staple"


def test_explain_answers_each_records_attributions(churn_model, churn_rows):
    rows = churn_rows.head(8)
    with serving(churn_model, max_records=10) as client:
        response = client.post("/explain", json={"records": records_of(rows)})
        too_many = client.post("/explain", json={"records": records_of(churn_rows.head(11))})
        wrong = client.post("/explain", json={"records": [{"tenure": "long"}]})
        document = client.get("/openapi.json").json()
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["method"] == "ig"  # a network alone
    probabilities = churn_model.predict_proba(rows)
    predicted = churn_model.predict(rows)
    for record, chosen, p in zip(answer["explanations"], predicted, probabilities):
        assert record["explained_class"] == str(chosen)
        assert record["value"] == pytest.approx(p.max(), rel=1e-5)
        total = record["base_value"] + sum(record["attributions"].values())
        assert total == pytest.approx(record["value"], abs=0.01)  # completeness
        assert set(record["attributions"]) == {f.name for f in churn_model.schema.inputs}
    assert too_many.status_code == 413
    assert wrong.status_code == 422
    assert "/explain" in document["paths"]


def test_explain_needs_the_token(churn_model, churn_rows):
    body = {"records": records_of(churn_rows.head(2))}
    with serving(churn_model, token=TOKEN) as client:
        assert client.post("/explain", json=body).status_code == 401
        good = client.post("/explain", json=body, headers={"authorization": f"Bearer {TOKEN}"})
    assert good.status_code == 200
    assert np.isfinite(good.json()["explanations"][0]["base_value"])
