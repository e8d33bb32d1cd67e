"""The FastAPI application: ``create_app(predictor, settings)``.

Endpoints: ``POST /predict``, ``GET /livez``, ``GET /readyz`` (503 until the model is
warmed up, and again from SIGTERM on), ``GET /schema``, ``GET /metrics`` (Prometheus
text) and ``GET /openapi.json``, whose request schema is built from the bundle's input
features. No /docs page: Swagger UI would load its scripts from a CDN.

>>> from deepstrata.serve.app import create_app                  # doctest: +SKIP
>>> app = create_app(Predictor(deepstrata.load("runs/churn")))     # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections import Counter
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from deepstrata.errors import DataError
from deepstrata.serve.batching import STOPPED, MicroBatcher
from deepstrata.serve.errors import ApiError, code_for_status, error_body
from deepstrata.serve.guard import OPEN_PATHS, Guard, ServerState
from deepstrata.serve.metrics import Metrics
from deepstrata.serve.predictor import Predictor
from deepstrata.serve.records import build_models, frame_of, values_of
from deepstrata.serve.settings import ServeSettings

logger = logging.getLogger("deepstrata.serve")


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


def _errors(*statuses: int) -> dict:
    what = {
        401: "No valid bearer token.",
        413: "Body larger than the limit, or more records than the limit.",
        422: "Invalid input: details name each field (records[0].age).",
        503: "Warming up, or too many requests at once (Retry-After).",
        504: "The request took longer than the timeout.",
    }
    return {status: {"model": ErrorResponse, "description": what[status]} for status in statuses}


def create_app(predictor: Predictor, settings: ServeSettings | None = None) -> FastAPI:
    """The application serving ``predictor``; ``app.state.serve`` is its :class:`ServerState`."""
    settings = (settings or ServeSettings()).validate()
    state = ServerState()
    metrics = Metrics()
    schema = predictor.schema
    _, request_model, response_model = build_models(
        schema, predictor.categories, settings, classes=predictor.classes
    )
    batcher = MicroBatcher(
        predictor.outputs,
        max_rows=settings.max_batch_rows,
        max_wait=settings.batch_wait_ms / 1000,
        pending=lambda: state.active,
        on_batch=metrics.batch,
    )

    async def warm_up() -> None:
        try:
            await batcher.in_worker(predictor.warm_up, settings.max_batch_rows)
        except Exception:
            logger.exception("warming the model up failed; readiness stays 503")
            return
        state.ready = True
        logger.info("model warmed up (%s backend); ready", predictor.backend)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        warming = asyncio.get_running_loop().create_task(warm_up())
        try:
            yield
        finally:
            warming.cancel()
            state.ready = False
            await batcher.stop()

    description = (
        f"Predicts {schema.target!r} ({schema.task}) from {len(schema.inputs)} input columns. "
        'POST /predict with {"records": [{...}, ...]}; GET /schema lists the inputs.'
    )
    app = FastAPI(
        title=f"deepstrata model: {schema.target}",
        description=description,
        version=_version(),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, behind the token like /schema
    )
    app.state.serve = state
    app.state.metrics = metrics
    app.state.batcher = batcher
    app.add_middleware(Guard, state=state, settings=settings, metrics=metrics)
    protected = [401] if settings.token else []

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, error: ApiError) -> Response:
        return _error_response(request, error)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, error: RequestValidationError) -> Response:
        return _error_response(request, _invalid(error.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, error: StarletteHTTPException) -> Response:
        message = {404: "no such endpoint", 405: "method not allowed on this endpoint"}.get(
            error.status_code, str(error.detail)
        )
        return _error_response(
            request,
            ApiError(
                code_for_status(error.status_code),
                message,
                status=error.status_code,
                headers=dict(error.headers or {}),
            ),
        )

    @app.get("/livez", summary="Liveness: the process answers.")
    async def livez() -> dict:
        return {"status": "alive"}

    @app.get(
        "/readyz",
        summary="Readiness: 200 once the model is warmed up; 503 before, and after SIGTERM.",
        responses=_errors(503),
    )
    async def readyz() -> dict:
        if state.draining:
            raise ApiError("not_ready", "shutting down", headers={"Retry-After": "1"})
        if not state.ready:
            raise ApiError("not_ready", "the model is warming up", headers={"Retry-After": "1"})
        if not batcher.running:
            raise ApiError("not_ready", STOPPED)
        return {"status": "ready", "backend": predictor.backend}

    @app.get(
        "/schema",
        summary="The model's input columns, task, classes and the server's limits.",
        responses=_errors(*protected, 503, 504),
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
                        {"categories": predictor.categories[f.name]} if f.kind == "category" else {}
                    ),
                }
                for f in schema.inputs
            ],
            "limits": settings.public(),
        }

    @app.get(
        "/metrics",
        summary="Prometheus metrics: requests by status, latency histogram, batch sizes.",
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
            **_errors(*protected),
        },
    )
    async def prometheus() -> Response:
        return Response(metrics.text(), media_type=metrics.content_type)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.post(
        "/predict",
        summary="Predict rows: records in; predictions, probabilities and warnings out.",
        response_model=response_model,
        responses=_errors(*protected, 413, 422, 503, 504),
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
        if not state.ready:
            raise ApiError("not_ready", "the model is warming up", headers={"Retry-After": "1"})
        if not batcher.running:
            raise ApiError("not_ready", STOPPED)
        # Parsed here rather than by FastAPI: the body is JSON whatever its Content-Type
        # claims (curl -d sends application/x-www-form-urlencoded), and parsing and
        # validating are one pass of pydantic's own JSON parser.
        body = await request.body()
        try:
            records = request_model.model_validate_json(body).records
        except ValidationError as error:
            raise _invalid(error.errors(include_url=False, include_input=False)) from None
        frame = frame_of(records, schema)
        extras = Counter(name for record in records for name in record.model_extra or {})
        warnings = predictor.warnings_of(values_of(records, schema), dict(extras))
        folder = (
            tempfile.TemporaryDirectory(prefix="deepstrata-serve-", ignore_cleanup_errors=True)
            if predictor.file_columns
            else None
        )
        try:
            if folder is not None:
                frame, problems = await batcher.in_worker(
                    predictor.stage_files, frame, Path(folder.name)
                )
                if problems:
                    raise ApiError(
                        "invalid_input",
                        f"{len(problems)} file field(s) cannot be decoded",
                        details=[
                            {"field": f"records[{row}].{column}", "message": reason, "type": "file"}
                            for row, column, reason in problems
                        ],
                    )
            try:
                outputs = await batcher.submit(frame)
            except DataError as error:  # a value validation let through and a preprocessor refused
                raise ApiError("invalid_input", _data_message(error)) from None
        finally:
            if folder is not None:
                # In the model's worker, after the jobs that use the folder: on a timeout the
                # staging (or the batch reading these files) is still running there, and
                # deleting the folder under it from here would fail, or pull its files away.
                batcher.after_worker(folder.cleanup)
        answer = predictor.answers(outputs)
        answer["warnings"] = warnings
        return JSONResponse(answer)

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = document.setdefault("components", {}).setdefault("schemas", {})
        request_schema = request_model.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components.update(request_schema.pop("$defs", {}))
        components["PredictRequest"] = request_schema
        if settings.token:
            document["components"]["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}
            }
            for path, operations in document["paths"].items():
                if path not in OPEN_PATHS:
                    for operation in operations.values():
                        operation["security"] = [{"bearer": []}]
        app.openapi_schema = document
        return document

    app.openapi = openapi
    return app


def _error_response(request: Request, error: ApiError) -> Response:
    request_id = getattr(request.state, "request_id", None)
    return Response(
        error_body(error.code, error.message, request_id, error.details),
        status_code=error.status,
        media_type="application/json",
        headers=error.headers,
    )


def _invalid(errors: list[dict]) -> ApiError:
    """pydantic's errors -> 422 naming each field as ``records[0].age``; a list longer than
    the limit -> 413."""
    for error in errors:
        if error["type"] == "too_long" and tuple(error["loc"][-1:]) == ("records",):
            limit = error.get("ctx", {}).get("max_length")
            return ApiError(
                "batch_too_large",
                f"at most {limit} records per request; split the request",
            )
    details = [
        {"field": _path(error["loc"]), "message": error["msg"], "type": error["type"]}
        for error in errors[:100]
    ]
    first = details[0]
    where = f"{first['field']}: " if first["field"] else ""
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ApiError("invalid_input", f"{where}{first['message']}{more}", details=details)


def _path(loc) -> str:
    """``("body", "records", 0, "age")`` -> ``records[0].age``."""
    text = ""
    for part in loc:
        if part == "body" and not text:
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _data_message(error: DataError) -> str:
    """A DataError's message for a client: the field, never a file name or a path. (Its row
    is the request's own: a failed batch is run again request by request.)"""
    if error.column and error.row:
        return f"records[{error.row - 1}].{error.column}: {error.message}"
    where = f"column {error.column!r}: " if error.column else ""
    return f"{where}{error.message}"


def _version() -> str:
    from deepstrata import __version__

    return __version__
