"""The endpoints, one request at a time: answers equal ``Model``'s, validation, errors, auth."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest

from deepstrata.serve.app import create_app
from deepstrata.serve.predictor import Predictor
from deepstrata.serve.settings import ServeSettings
from tests.serve.conftest import records_of, serving

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOKEN = "correct-horse-battery-staple"


@pytest.fixture(scope="module")
def client(churn_model):
    with serving(churn_model, max_records=50) as client:
        yield client


def one_record(churn_rows) -> dict:
    return records_of(churn_rows.head(1))[0]


def test_predictions_and_probabilities_equal_the_models(client, churn_model, churn_rows):
    response = client.post("/predict", json={"records": records_of(churn_rows)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["predictions"] == list(churn_model.predict(churn_rows))
    assert body["classes"] == list(churn_model.classes)
    expected = churn_model.predict_proba(churn_rows)
    got = np.array([[row[str(c)] for c in churn_model.classes] for row in body["probabilities"]])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)
    assert body["warnings"] == []


def test_the_body_is_json_whatever_its_content_type(client, churn_rows):
    """``curl -d`` sends application/x-www-form-urlencoded."""
    body = json.dumps({"records": [one_record(churn_rows)]})
    response = client.post(
        "/predict",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text


def test_null_is_a_missing_value(client, churn_model, churn_rows):
    record = {name: None for name in one_record(churn_rows)}
    response = client.post("/predict", json={"records": [record]})
    assert response.status_code == 200, response.text
    frame = pd.DataFrame({name: [None] for name in record}).astype(
        {"tenure": float, "monthly": float}
    )
    assert response.json()["predictions"] == list(churn_model.predict(frame))


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("tenure", "twelve", "expected a number, got 'twelve'"),
        ("tenure", True, "expected a number, got true"),
        ("tenure", 10**400, "expected a finite number"),
        ("plan", {"name": "pro"}, "expected a string"),
        ("paperless", "maybe", "expected true or false"),
        ("signup", "not a date", "expected a date or time"),
    ],
)
def test_a_wrong_type_is_422_naming_the_field(client, churn_rows, field, value, expected):
    records = records_of(churn_rows.head(3))
    records[2][field] = value
    response = client.post("/predict", json={"records": records})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    [detail] = error["details"]
    assert detail["field"] == f"records[2].{field}"
    assert expected in detail["message"]
    assert error["message"].startswith(f"records[2].{field}: ")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_422(client, churn_rows, literal):
    record = one_record(churn_rows)
    text = json.dumps({"records": [record]}).replace(
        f'"monthly": {json.dumps(record["monthly"])}', f'"monthly": {literal}'
    )
    assert literal in text
    response = client.post("/predict", content=text)
    assert response.status_code == 422
    [detail] = response.json()["error"]["details"]
    assert detail["field"] == "records[0].monthly" and "finite" in detail["message"]


def test_a_missing_field_is_422(client, churn_rows):
    record = one_record(churn_rows)
    del record["plan"]
    response = client.post("/predict", json={"records": [record]})
    assert response.status_code == 422
    [detail] = response.json()["error"]["details"]
    assert detail == {"field": "records[0].plan", "message": "Field required", "type": "missing"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"records": []}', "records"),
        (b"{}", "records"),
        (b'{"records": {"tenure": 1}}', "records"),
        (b'{"records": [1]}', "records[0]"),
        (b"not json", ""),
        (b"", ""),
    ],
)
def test_empty_batches_and_malformed_bodies_are_422(client, body, field):
    response = client.post("/predict", content=body)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == field


def test_more_records_than_the_limit_is_413(client, churn_rows):
    records = records_of(churn_rows.head(1)) * 51
    response = client.post("/predict", json={"records": records})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "batch_too_large"
    assert "at most 50 records" in response.json()["error"]["message"]


def test_an_unseen_category_is_predicted_with_a_warning(client, churn_rows):
    records = records_of(churn_rows.head(3))
    records[1]["plan"] = "enterprise"
    records[2]["coupon"] = "SPRING"
    response = client.post("/predict", json={"records": records})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["predictions"]) == 3
    warnings = {(w["record"], w["column"]): w["message"] for w in body["warnings"]}
    assert "'enterprise' was not seen in training" in warnings[(1, "plan")]
    assert "not an input of the model" in warnings[(None, "coupon")]
    assert len(warnings) == 2


def test_errors_are_json_with_a_code_and_the_request_id(client):
    missing = client.get("/nowhere", headers={"x-request-id": "trace-42"})
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {"code": "not_found", "message": "no such endpoint", "request_id": "trace-42"}
    }
    assert missing.headers["x-request-id"] == "trace-42"
    wrong = client.delete("/predict", headers={"x-request-id": "<script>alert(1)</script>"})
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert wrong.json()["error"]["code"] == "method_not_allowed"
    generated = wrong.headers["x-request-id"]
    assert len(generated) == 32 and wrong.json()["error"]["request_id"] == generated


def test_an_unexpected_failure_is_a_json_500_without_traceback_or_path(churn_model, churn_rows):
    from fastapi.testclient import TestClient

    from tests.serve.conftest import wait_ready

    model = copy.copy(churn_model)
    app = create_app(Predictor(model), ServeSettings())
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_ready(client.get)

        def broken(table):
            raise RuntimeError("cannot open /srv/secret/weights.bin")

        model.outputs_of = model.outputs_of_values = broken
        response = client.post("/predict", json={"records": [one_record(churn_rows)]})
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "secret" not in response.text and "Traceback" not in response.text
    assert response.json()["error"]["request_id"] == response.headers["x-request-id"]


def test_readiness_is_503_until_warm_and_again_while_draining(churn_model, churn_rows):
    from fastapi.testclient import TestClient

    from tests.serve.conftest import wait_ready

    app = create_app(Predictor(churn_model))
    cold = TestClient(app, raise_server_exceptions=False)  # no lifespan: never warmed up
    assert cold.get("/readyz").status_code == 503
    assert cold.get("/readyz").json()["error"]["code"] == "not_ready"
    assert cold.post("/predict", json={"records": [one_record(churn_rows)]}).status_code == 503
    assert cold.get("/livez").status_code == 200
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_ready(client.get)
        app.state.serve.draining = True  # what SIGTERM does (see test_server.py)
        response = client.get("/readyz")
        assert response.status_code == 503 and "shutting down" in response.text
        # Requests still arriving while a load balancer catches up are answered.
        assert (
            client.post("/predict", json={"records": [one_record(churn_rows)]}).status_code == 200
        )


def test_schema_lists_inputs_kinds_and_categories(client, churn_model):
    schema = client.get("/schema").json()
    assert schema["task"] == "binary" and schema["target"] == "churned"
    kinds = {f["name"]: f["kind"] for f in schema["inputs"]}
    assert kinds == {f.name: f.kind for f in churn_model.schema.inputs}
    plan = next(f for f in schema["inputs"] if f["name"] == "plan")
    assert set(plan["categories"]) == {"basic", "pro", "max"}
    assert schema["limits"]["max_records"] == 50 and "token" not in schema["limits"]


def test_openapi_is_built_from_the_input_features(client):
    document = client.get("/openapi.json").json()
    record = document["components"]["schemas"]["Record"]
    assert set(record["required"]) == {"tenure", "monthly", "plan", "paperless", "signup"}
    plan = record["properties"]["plan"]
    assert set(plan["anyOf"][0]["x-categories"]) == {"basic", "pro", "max"}
    assert {"type": "number"} in record["properties"]["tenure"]["anyOf"]
    request = document["components"]["schemas"]["PredictRequest"]["properties"]["records"]
    assert request["maxItems"] == 50 and request["minItems"] == 1
    assert "security" not in document["paths"]["/predict"]["post"]


def test_metrics_count_requests_by_status_and_time_them(client, churn_rows):
    client.post("/predict", json={"records": [one_record(churn_rows)]})
    client.post("/predict", content=b"{}")
    text = client.get("/metrics").text
    assert 'deepstrata_http_requests_total{endpoint="/predict",method="POST",status="200"}' in text
    assert 'deepstrata_http_requests_total{endpoint="/predict",method="POST",status="422"}' in text
    assert 'deepstrata_http_request_duration_seconds_bucket{endpoint="/predict",le="0.01"}' in text
    assert "deepstrata_batch_rows_count" in text


def test_a_token_protects_everything_but_the_probes(churn_model, churn_rows):
    with serving(churn_model, token=TOKEN) as client:
        body = {"records": [one_record(churn_rows)]}
        for path in ("/schema", "/metrics", "/openapi.json"):
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
        refused = client.post("/predict", json=body)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["error"]["code"] == "unauthorized"
        for wrong in (f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN):
            assert (
                client.post("/predict", json=body, headers={"authorization": wrong}).status_code
                == 401
            )
        good = client.post("/predict", json=body, headers={"authorization": f"bearer {TOKEN}"})
        assert good.status_code == 200
        assert client.get("/livez").status_code == 200 and client.get("/readyz").status_code == 200
        document = client.get("/openapi.json", headers={"authorization": f"Bearer {TOKEN}"}).json()
        assert document["paths"]["/predict"]["post"]["security"] == [{"bearer": []}]
        assert "security" not in document["paths"]["/livez"]["get"]


def test_settings_are_validated_with_the_flag_name():
    from deepstrata.errors import ConfigError

    for settings, flag in [
        (ServeSettings(max_records=0), "--max-records"),
        (ServeSettings(timeout=math.inf), "--timeout"),
        (ServeSettings(batch_wait_ms=-1), "--batch-wait-ms"),
        (ServeSettings(decode_budget=0), "--decode-budget"),
        (ServeSettings(max_header_bytes=0), "--max-header-bytes"),
        (ServeSettings(header_timeout=0), "--header-timeout"),
        (ServeSettings(keep_alive=-1), "--keep-alive"),
        (ServeSettings(token="short"), "--token"),
    ]:
        with pytest.raises(ConfigError) as caught:
            settings.validate()
        assert caught.value.option == flag


@pytest.mark.parametrize("escape", ["\\ud800", "\\udc00"])
def test_a_lone_surrogate_is_named_as_such(client, churn_rows, escape):
    """Issue 24.13: pydantic's parser said "unexpected end of hex escape" (or "lone leading
    surrogate" for a trailing half)."""
    record = json.dumps({"records": [{**one_record(churn_rows), "plan": "x"}]})
    body = record.replace('"plan": "x"', f'"plan": "x{escape}"')
    response = client.post("/predict", content=body.encode())
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert escape in message and "half of a UTF-16 surrogate pair" in message
    assert "hex escape" not in message
    whole = body.replace(escape, "\\ud83d\\ude00")  # a pair is a character: answered
    assert client.post("/predict", content=whole.encode()).status_code == 200


def test_predict_is_answered_past_fastapis_routing(churn_model, churn_rows):
    """POST /predict is the guard's own handler (a third of a small request's time was
    FastAPI's routing and middleware); its answers and errors are the route's."""
    from fastapi.testclient import TestClient

    from tests.serve.conftest import wait_ready

    app = create_app(Predictor(churn_model), ServeSettings())
    route = next(r for r in app.router.routes if getattr(r, "path", None) == "/predict")

    async def unreachable(scope, receive, send):
        raise AssertionError("FastAPI's /predict route ran")

    route.app = unreachable
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_ready(client.get)
        good = client.post("/predict", json={"records": records_of(churn_rows.head(3))})
        bad = client.post("/predict", json={"records": []}, headers={"X-Request-ID": "abc-1"})
    assert good.status_code == 200, good.text
    assert good.json()["predictions"] == list(churn_model.predict(churn_rows.head(3)))
    assert good.headers["content-type"] == "application/json" and "x-request-id" in good.headers
    assert bad.status_code == 422 and bad.json()["error"]["request_id"] == "abc-1"
    assert bad.json()["error"]["details"][0]["field"] == "records"


def test_fastapis_telemetry_hooks_are_off_unless_opentelemetry_is_set_up(monkeypatch):
    """Asking OpenTelemetry for its providers on every request cost a fifth of a small
    request; a server whose process configured OpenTelemetry keeps FastAPI's hooks."""
    pytest.importorskip("opentelemetry")
    from opentelemetry import trace

    from deepstrata.serve.app import _telemetry

    assert _telemetry() in ({}, {"telemetry": {"tracing": False, "metrics": False, "logs": False}})
    if not _telemetry():
        pytest.skip("this FastAPI has no telemetry hooks")
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: trace.NoOpTracerProvider())
    assert _telemetry() == {}
