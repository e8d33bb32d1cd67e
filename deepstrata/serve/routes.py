"""The endpoints: liveness and readiness, the model's description, metrics, predictions.

Each ``add_*`` function registers its routes on the application that
:func:`deepstrata.serve.app.create_app` builds; ``context`` holds what they share (the
predictor, the settings, the server state, the metrics, the batcher, the file stager, the
request and response models).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from deepstrata.errors import DataError
from deepstrata.serve.batching import STOPPED, MicroBatcher
from deepstrata.serve.errors import ApiError
from deepstrata.serve.guard import ServerState
from deepstrata.serve.handlers import data_message, invalid
from deepstrata.serve.metrics import Metrics
from deepstrata.serve.predictor import Predictor
from deepstrata.serve.records import frame_of, values_of
from deepstrata.serve.settings import ServeSettings
from deepstrata.serve.staging import FileStager


class ErrorDetail(BaseModel):
    field: str
    message: str
    type: str


class ErrorBody(BaseModel):
    code: str
    message: str
    request_id: str | None
    details: list[ErrorDetail] | None = None


class ErrorResponse(BaseModel):
    """Every error: a code to branch on, a message to read, the request id to quote."""

    error: ErrorBody


@dataclass
class Context:
    """What the endpoints share."""

    predictor: Predictor
    settings: ServeSettings
    state: ServerState
    metrics: Metrics
    batcher: MicroBatcher
    stager: FileStager
    request_model: type[BaseModel]
    response_model: type[BaseModel]

    @property
    def protected(self) -> list[int]:
        """The statuses a token adds to an endpoint's documented answers."""
        return [401] if self.settings.token else []


def errors(*statuses: int) -> dict:
    """OpenAPI ``responses`` for the error statuses an endpoint can answer."""
    what = {
        401: "No valid bearer token.",
        413: "Body larger than the limit, or more records than the limit.",
        422: "Invalid input: details name each field (records[0].age).",
        503: "Warming up, or too many requests at once (Retry-After).",
        504: "The request took longer than the timeout.",
    }
    return {status: {"model": ErrorResponse, "description": what[status]} for status in statuses}


def check_ready(context: Context) -> None:
    """503 (retryable) while warming up, shutting down, or without a worker."""
    if context.state.draining:
        raise ApiError("not_ready", "shutting down", headers={"Retry-After": "1"})
    if not context.state.ready:
        raise ApiError("not_ready", "the model is warming up", headers={"Retry-After": "1"})
    if not context.batcher.running:
        raise ApiError("not_ready", STOPPED)


def add_health_routes(app: FastAPI, context: Context) -> None:
    @app.get("/livez", summary="Liveness: the process answers.")
    async def livez() -> dict:
        return {"status": "alive"}

    @app.get(
        "/readyz",
        summary="Readiness: 200 once the model is warmed up; 503 before, and after SIGTERM.",
        responses=errors(503),
    )
    async def readyz() -> dict:
        check_ready(context)
        return {"status": "ready", "backend": context.predictor.backend}


def add_info_routes(app: FastAPI, context: Context) -> None:
    predictor, schema = context.predictor, context.predictor.schema

    @app.get(
        "/schema",
        summary="The model's input columns, task, classes and the server's limits.",
        responses=errors(*context.protected, 503, 504),
    )
    async def describe() -> dict:
        return {
            "target": schema.target,
            "task": schema.task,
            "classes": predictor.classes,
            "backend": predictor.backend,
            "inputs": [
                {
                    "name": f.name,
                    "kind": f.kind,
                    "nullable": True,
                    **(
                        {"categories": predictor.categories[f.name]}
                        if f.name in predictor.categories
                        else {}
                    ),
                }
                for f in schema.inputs
            ],
            "limits": context.settings.public(),
        }

    @app.get(
        "/metrics",
        summary="Prometheus metrics: requests by status, latency histogram, batch sizes.",
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
            **errors(*context.protected),
        },
    )
    async def prometheus() -> Response:
        return Response(context.metrics.text(), media_type=context.metrics.content_type)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())


def add_predict_route(app: FastAPI, context: Context) -> None:
    @app.post(
        "/predict",
        summary="Predict rows: records in; predictions, probabilities and warnings out.",
        response_model=context.response_model,
        responses=errors(*context.protected, 413, 422, 503, 504),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}
                },
            }
        },
    )
    async def predict(request: Request) -> Response:
        if not context.state.ready:
            raise ApiError("not_ready", "the model is warming up", headers={"Retry-After": "1"})
        if not context.batcher.running:
            raise ApiError("not_ready", STOPPED)
        records = parse_records(context, await request.body())
        answer = await predict_records(context, records)
        return JSONResponse(answer)


def parse_records(context: Context, body: bytes) -> list:
    """The request's records, validated. Parsed here rather than by FastAPI: the body is
    JSON whatever its Content-Type claims (curl -d sends form encoding), and parsing and
    validating are one pass of pydantic's own JSON parser."""
    try:
        return context.request_model.model_validate_json(body).records
    except ValidationError as error:
        raise invalid(error.errors(include_url=False, include_input=False)) from None


async def predict_records(context: Context, records: list) -> dict:
    """Warnings per record, files staged and checked, then the forward pass in a batch."""
    predictor, batcher, schema = context.predictor, context.batcher, context.predictor.schema
    frame = frame_of(records, schema)
    extras = Counter(name for record in records for name in record.model_extra or {})
    warnings = predictor.warnings_of(values_of(records, schema), dict(extras))
    try:
        # The files go in the model's worker, after the jobs that use them: on a timeout the
        # batch reading them may still be running there.
        async with context.stager.staged(frame, after=batcher.after_worker) as staged:
            outputs = await batcher.submit(staged)
    except DataError as error:  # a value validation let through and a preprocessor refused
        raise ApiError("invalid_input", data_message(error)) from None
    answer = predictor.answers(outputs, frame)
    answer["warnings"] = warnings
    return answer
