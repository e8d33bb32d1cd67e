"""``deepstrata serve`` for a forecaster: POST /forecast with a history, get back per series
and step the median forecast and its quantiles. The same guard as /predict (bearer token,
body and concurrency limits, timeouts) and the same error bodies; GET /livez and /readyz.

    POST /forecast {"records": [{"date": "2024-01-01", "store": "a", "units": 12}, ...]}
    -> {"forecasts": [{"store": "a", "date": "2024-02-01", "step": 1, "units": 13.1,
                       "units_q10": 11.0, "units_q90": 15.2}, ...]}

An ensemble (``fit --time --ensemble``) answers the mix of its network and its baseline,
the baseline refitted on the posted history (``GET /readyz`` names it and the weight).
The records are what ``deepstrata predict`` reads as a file: each series' history and, for
known-ahead covariates, its next horizon rows with the target left out.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from deepstrata.errors import DataError, DeepstrataError
from deepstrata.serve.errors import ApiError
from deepstrata.serve.guard import Guard, ServerState
from deepstrata.serve.handlers import install_error_handlers
from deepstrata.serve.metrics import Metrics
from deepstrata.serve.settings import ServeSettings


def forecast_records(model, body: bytes, settings: ServeSettings) -> dict:
    """The answer to one POST /forecast body (ApiError 422 for what the client sent)."""
    import pandas as pd

    try:
        records = json.loads(body)["records"]
    except (ValueError, KeyError, TypeError):
        raise ApiError(
            "invalid_input", 'expected a JSON object {"records": [{...}, ...]}'
        ) from None
    if (
        not isinstance(records, list)
        or not records
        or not all(isinstance(r, dict) for r in records)
    ):
        raise ApiError("invalid_input", '"records" must be a non-empty list of objects')
    if len(records) > settings.max_records:
        raise ApiError("batch_too_large", f"at most {settings.max_records} records per request")
    try:
        frame = model.predictions(pd.DataFrame.from_records(records))
    except DataError as error:
        where = f"records[{error.row - 1}]." if error.row else ""
        raise ApiError("invalid_input", f"{where}{error.column or ''}: {error.message}") from None
    except DeepstrataError as error:
        raise ApiError("invalid_input", str(error)) from None
    time = model.spec.time
    frame[time] = frame[time].dt.strftime("%Y-%m-%dT%H:%M:%S")
    return {"forecasts": json.loads(frame.to_json(orient="records"))}


def create_forecast_app(model, settings: ServeSettings | None = None):
    """The application serving the forecaster ``model``."""
    from deepstrata.version import __version__

    settings = (settings or ServeSettings()).validate()
    state, metrics = ServerState(ready=True), Metrics()
    app = FastAPI(
        title=f"deepstrata forecaster: {model.spec.target}",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_middleware(Guard, state=state, settings=settings, metrics=metrics)
    install_error_handlers(app)

    @app.get("/livez")
    async def livez() -> dict:
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz() -> dict:
        mixed = (
            None
            if model.mix is None
            else {"baseline": model.mix.baseline, "weight": model.mix.weight}
        )
        return {
            "status": "ready",
            "horizon": model.spec.horizon,
            "quantiles": model.quantiles,
            "ensemble": mixed,
        }

    @app.post("/forecast")
    async def forecast(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse(await run_in_threadpool(forecast_records, model, body, settings))

    return app
