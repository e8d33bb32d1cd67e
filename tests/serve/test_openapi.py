"""Schemathesis against the server's own /openapi.json, over HTTP: cases generated from the
schema, valid and invalid, must never get a 5xx, and every answer must match the schema
(status codes, content types, bodies, auth enforced).

One check is left out: that every schema-valid request is accepted. A datetime field is a
string in the schema, and the server accepts the strings pandas parses as dates, which
no JSON Schema can say; such a request gets a 422 naming the field, not a 5xx.

The cases are drawn with each operation's Hypothesis strategy rather than
``@schema.parametrize()``: schemathesis's lazy pytest loader (needed to build the schema
from a fixture) does not run under pytest 9.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from deepstrata.serve.app import create_app
from deepstrata.serve.predictor import Predictor
from deepstrata.serve.settings import ServeSettings
from tests.serve.conftest import live_server

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOKEN = "schemathesis-test-token-0123456789"
EXAMPLES = 40  # per operation and mode; a GET without parameters is one request, tried 3 times


def test_no_operation_answers_5xx_or_off_schema(churn_model):
    app = create_app(Predictor(churn_model), ServeSettings(max_records=20, token=TOKEN))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    statuses: Counter = Counter()
    with live_server(app) as base:
        api = schemathesis.openapi.from_url(f"{base}/openapi.json", headers=auth)
        operations = [result.ok() for result in api.get_all_operations()]
        for operation in operations:
            # Invalid cases need something to break: a GET without parameters has nothing.
            has_body = len(operation.body) > 0
            modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if has_body else ()
            for mode in modes or (GenerationMode.POSITIVE,):

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(
                    max_examples=EXAMPLES if has_body else 3,
                    deadline=None,
                    database=None,  # no .hypothesis/ folder in the work tree
                    derandomize=True,  # the same cases every run: the counts below are stable
                    suppress_health_check=list(HealthCheck),
                )
                def check(case):
                    response = case.call_and_validate(
                        headers=auth, excluded_checks=[positive_data_acceptance]
                    )
                    statuses[(case.operation.label, response.status_code)] += 1
                    assert response.status_code < 500

                check()
    labels = {label for label, _ in statuses}
    assert labels == {op.label for op in operations}
    assert {"POST /predict", "GET /schema", "GET /readyz"} <= labels
    cases = sum(statuses.values())
    print(f"\nschemathesis: {len(operations)} operations, {cases} cases, statuses {dict(statuses)}")
    assert not [key for key in statuses if key[1] >= 500]
    assert statuses[("POST /predict", 200)] > 0 and statuses[("POST /predict", 422)] > 0
