import numpy as np
import pytest

from deepstrata.serve.forecast import create_forecast_app
from deepstrata.serve.settings import ServeSettings
from tests.forecast.conftest import tiny_panel
from tests.forecast.test_fit import future_rows

pytest.importorskip("fastapi")
pytest.importorskip("httpx")


def records(frame):
    frame = frame.assign(date=frame["date"].dt.strftime("%Y-%m-%d"))
    return [
        {k: v for k, v in r.items() if not (isinstance(v, float) and np.isnan(v))}
        for r in frame.to_dict("records")
    ]


def test_a_posted_history_gets_the_forecasts_predict_writes(forecaster):
    import pandas as pd
    from fastapi.testclient import TestClient

    frame = tiny_panel()
    history = pd.concat([frame, future_rows(frame)], ignore_index=True)
    client = TestClient(create_forecast_app(forecaster, ServeSettings(token="s" * 16)))
    assert client.get("/readyz").json()["horizon"] == 6
    assert client.post("/forecast", json={"records": records(history)}).status_code == 401
    headers = {"Authorization": "Bearer " + "s" * 16}
    answer = client.post("/forecast", json={"records": records(history)}, headers=headers)
    assert answer.status_code == 200, answer.text
    served = pd.DataFrame(answer.json()["forecasts"])
    expected = forecaster.predictions(history)
    np.testing.assert_allclose(served["units_q90"], expected["units_q90"], rtol=1e-6)
    missing = client.post("/forecast", json={"records": records(frame)}, headers=headers)
    assert missing.status_code == 422 and "future rows" in missing.json()["error"]["message"]
