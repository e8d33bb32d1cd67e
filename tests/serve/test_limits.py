"""serve --rate-limit (a token bucket per bearer token, 429 with Retry-After) and
serve --output (what /predict tells of each class)."""

from __future__ import annotations

import pytest

from deepstrata.errors import ConfigError
from deepstrata.serve.app import explainable
from deepstrata.serve.limits import RateLimit, client_key
from deepstrata.serve.settings import ServeSettings
from tests.serve.conftest import records_of, serving

TOKEN = "a-token-long-enough-1234"


def test_the_bucket_refills_at_the_rate_and_keeps_each_key_apart():
    now = [0.0]
    limit = RateLimit(60, clock=lambda: now[0])  # one a second, a burst of 60
    assert all(limit.wait(b"a") == 0 for _ in range(60))
    assert limit.wait(b"a") == pytest.approx(1.0)
    assert limit.wait(b"b") == 0  # another token has its own bucket
    now[0] = 0.5
    assert limit.wait(b"a") == pytest.approx(0.5)
    now[0] = 1.0
    assert limit.wait(b"a") == 0
    scope = {"headers": [(b"authorization", b"Bearer x ")], "client": ("10.0.0.1", 5)}
    assert client_key(scope) == b"Bearer x"
    assert client_key({"headers": [], "client": ("10.0.0.1", 5)}) == b"10.0.0.1"


def test_requests_past_the_rate_are_429_with_retry_after(churn_model, churn_rows):
    body = {"records": records_of(churn_rows.head(1))}
    with serving(churn_model, rate_limit=2, token=TOKEN) as client:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert [client.post("/predict", json=body, headers=auth).status_code for _ in range(2)] == [
            200,
            200,
        ]
        refused = client.post("/predict", json=body, headers=auth)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) == 30
        assert client.get("/livez").status_code == 200  # probes are never limited
        assert client.get("/metrics", headers=auth).status_code == 200


def test_output_policy_of_predict(churn_model, churn_rows):
    body = {"records": records_of(churn_rows.head(3))}
    with serving(churn_model) as client:
        full = client.post("/predict", json=body).json()
        if explainable():  # attributions are served with the probabilities only
            assert client.post("/explain", json=body).status_code != 404
    with serving(churn_model, output="rounded") as client:
        rounded = client.post("/predict", json=body).json()
        assert client.post("/explain", json=body).status_code == 404
    with serving(churn_model, output="labels") as client:
        labels = client.post("/predict", json=body).json()
    assert full["predictions"] == rounded["predictions"] == labels["predictions"]
    assert "probabilities" not in labels
    for exact, coarse in zip(full["probabilities"], rounded["probabilities"], strict=True):
        for name, value in exact.items():
            assert coarse[name] == pytest.approx(round(value, 1))


def test_settings_name_the_flag():
    with pytest.raises(ConfigError, match="--output"):
        ServeSettings(output="logits").validate()
    with pytest.raises(ConfigError, match="--rate-limit"):
        ServeSettings(rate_limit=-1).validate()
