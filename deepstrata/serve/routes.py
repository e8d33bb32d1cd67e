"""The endpoints: liveness and readiness, the model's description, metrics, predictions.

Each ``add_*`` function registers its routes on the application that
:func:`deepstrata.serve.app.create_app` builds; ``context`` holds what they share (the
predictor, the settings, the server state, the metrics, the batcher, the file stager, the
request and response models).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

from deepstrata.errors import DataError
from deepstrata.serve.batching import STOPPED, MicroBatcher
from deepstrata.serve.errors import ApiError
from deepstrata.serve.guard import ServerState
from deepstrata.serve.handlers import data_message, invalid
from deepstrata.serve.metrics import Metrics
from deepstrata.serve.predictor import Predictor
from deepstrata.serve.records import Rows, frame_of, values_of
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
    drift: object | None = None  # a serve.drift.DriftWindow: the latest rows, for /drift

    @property
    def protected(self) -> list[int]:
        """The statuses a token adds to an endpoint's documented answers."""
        return [401] if self.settings.token else []


# The body of /predict and /explain in the OpenAPI document: the request model of the bundle.
RECORDS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}
        },
    }
}


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
    check_serving(context)


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
        openapi_extra=RECORDS_BODY,
    )
    async def predict(request: Request) -> Response:
        check_serving(context)
        records = parse_records(context, await request.body())
        answer = await predict_records(context, records)
        return JSONResponse(answer)


def check_serving(context: Context) -> None:
    """503 (retryable) while warming up or without a worker (draining: still answered)."""
    if not context.state.ready:
        raise ApiError("not_ready", "the model is warming up", headers={"Retry-After": "1"})
    if not context.batcher.running:
        raise ApiError("not_ready", STOPPED)


def predict_handler(context: Context):
    """``POST /predict`` as a bare ASGI handler for the :class:`~deepstrata.serve.guard.Guard`
    to call past FastAPI's routing and middleware stack (a third of a small request's time
    in the server): the same checks, parsing and answer as the route above, which stays
    for the OpenAPI document. ``exchange`` is the guard's, so limits, the request id, the
    timeout and the metrics are the same either way."""

    async def handle(exchange) -> None:
        body = await read_body(exchange.receive)
        try:
            check_serving(context)
            answer = await predict_records(context, parse_records(context, body))
        except ApiError as error:
            await exchange.refuse(error)
            return
        payload = json.dumps(
            answer, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
        ).encode("utf-8")  # as FastAPI's JSONResponse renders it
        headers = [(b"content-length", str(len(payload)).encode()), JSON_TYPE]
        await exchange.send({"type": "http.response.start", "status": 200, "headers": headers})
        await exchange.send({"type": "http.response.body", "body": payload})

    return handle


JSON_TYPE = (b"content-type", b"application/json")


async def read_body(receive) -> bytes:
    """A request's whole body from the ASGI ``receive`` stream (a client that leaves
    meanwhile: ``ClientDisconnect``, as Starlette's ``Request.body`` raises)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def parse_records(context: Context, body: bytes) -> list:
    """The request's records, validated. Parsed here rather than by FastAPI: the body is
    JSON whatever its Content-Type claims (curl -d sends form encoding), and parsing and
    validating are one pass of pydantic's own JSON parser."""
    try:
        return context.request_model.model_validate_json(body).records
    except ValidationError as error:
        errors = error.errors(include_url=False, include_input=False)
        lone = LONE_SURROGATE.search(body) if errors[0]["type"] == "json_invalid" else None
        if lone is not None:  # the parser's own words ("unexpected end of hex escape") mislead
            raise ApiError(
                "invalid_input",
                f"invalid JSON: {lone.group().decode()} at byte {lone.start()} is half of a "
                "UTF-16 surrogate pair, which is no character on its own (the text was cut "
                "or mis-encoded); send the whole character or remove it",
            ) from None
        raise invalid(errors) from None


# A \uD800-\uDBFF escape not followed by a \uDC00-\uDFFF one, or a low half on its own.
LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


async def predict_records(context: Context, records: list) -> dict:
    """Warnings per record, files staged and checked, then the forward pass in a batch."""
    predictor, batcher, schema = context.predictor, context.batcher, context.predictor.schema
    rows = Rows.of(records, schema)
    extras = Counter(name for record in records for name in record.model_extra or {})
    warnings = predictor.warnings_of(rows.columns, dict(extras))
    try:
        if not predictor.file_columns:  # no DataFrame: the records' values go to the model
            outputs = await batcher.submit(rows)
        else:
            # The files go in the model's worker, after the jobs that use them: on a timeout
            # the batch reading them may still be running there.
            frame = frame_of(records, schema)
            async with context.stager.staged(frame, after=batcher.after_worker) as staged:
                outputs = await batcher.submit(staged)
    except DataError as error:  # a value validation let through and a preprocessor refused
        raise ApiError("invalid_input", data_message(error)) from None
    answer = predictor.answers(outputs, sensitive_values(predictor, records, rows))
    if context.drift is not None:
        context.drift.observe(rows.columns, answer["predictions"])
    answer = released(answer, context.settings.output)
    answer["warnings"] = warnings
    return answer


def released(answer: dict, policy: str) -> dict:
    """serve --output: the probabilities as the policy lets them out (labels: none)."""
    if policy == "probabilities" or "probabilities" not in answer:
        return answer
    if policy == "labels":
        answer.pop("probabilities")
        return answer
    import numpy as np

    from deepstrata.attack.output import release

    rows = answer["probabilities"]
    names = list(rows[0]) if rows else []
    values = release(np.array([[row[name] for name in names] for row in rows]), policy)
    answer["probabilities"] = [dict(zip(names, row)) for row in values.tolist()]
    return answer


def sensitive_values(predictor: Predictor, records: list, rows: Rows) -> dict | None:
    """The fairness thresholds' columns of each record (None without thresholds): an input's
    validated value, or the field as sent when the column is not an input (--audit-only)."""
    fairness = predictor.model.fairness
    if fairness is None:
        return None
    return {
        name: rows.columns[name]
        if name in rows.columns
        else [(record.model_extra or {}).get(name) for record in records]
        for name in fairness["columns"]
    }


# -- explanations ----------------------------------------------------------------------------

SERVE_SAMPLES = 512  # KernelSHAP coalitions per record: bounds a request's cost


class RecordExplanation(BaseModel):
    """One record's attributions: ``value`` (the explained probability, or the value for
    regression) = ``base_value`` (every input at its baseline) + the attributions."""

    explained_class: str | None
    value: float
    base_value: float
    attributions: dict[str, float]


class ExplainResponse(BaseModel):
    method: str
    explanations: list[RecordExplanation]
    warnings: list[dict]


def add_explain_route(app: FastAPI, context: Context) -> None:
    """``POST /explain``: the records of a /predict request, each with its prediction's
    attributions; integrated gradients when every member is a network, else KernelSHAP
    with :data:`SERVE_SAMPLES` coalitions. Same validation, limits and token as /predict."""
    from deepstrata.explain.run import networks_only

    method = "ig" if networks_only(context.predictor.model) else "shap"

    @app.post(
        "/explain",
        summary=f"Explain rows: records in; each prediction's attributions ({method}) out.",
        response_model=ExplainResponse,
        responses=errors(*context.protected, 413, 422, 503, 504),
        openapi_extra=RECORDS_BODY,
    )
    async def explain(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        check_ready(context)
        records = parse_records(context, await request.body())
        schema = context.predictor.schema
        frame = frame_of(records, schema)
        extras = Counter(name for record in records for name in record.model_extra or {})
        warnings = context.predictor.warnings_of(values_of(records, schema), dict(extras))
        try:
            async with context.stager.staged(frame, after=context.batcher.after_worker) as staged:
                answer = await run_in_threadpool(explain_frame, context, staged, method)
        except DataError as error:
            raise ApiError("invalid_input", data_message(error)) from None
        answer["warnings"] = warnings
        return JSONResponse(answer)


def explain_frame(context: Context, frame, method: str) -> dict:
    import warnings

    from deepstrata.explain import explain

    with warnings.catch_warnings():  # unseen categories: said once, in "warnings"
        warnings.simplefilter("ignore")
        explanation = explain(
            context.predictor.model,
            frame,
            method=method,
            samples=SERVE_SAMPLES,
            max_rows=max(len(frame), 1),
            faithfulness=False,
            words=False,  # a text's words cost 2W + 512 model calls each: not per request
        )
    classes = explanation.classes or [None] * len(explanation.rows)
    return {
        "method": explanation.method,
        "explanations": [
            {
                "explained_class": None if classes[i] is None else str(classes[i]),
                "value": float(explanation.predictions[i]),
                "base_value": float(explanation.base_values[i]),
                "attributions": dict(zip(explanation.columns, map(float, explanation.values[i]))),
            }
            for i in range(len(explanation.rows))
        ],
    }
