"""The FastAPI application: ``create_app(predictor, settings)``.

Endpoints (:mod:`deepstrata.serve.routes`): ``POST /predict``, ``GET /livez``,
``GET /readyz`` (503 until the model is warmed up, and again from SIGTERM on),
``GET /schema``, ``GET /metrics`` (Prometheus text), ``GET /drift``
(:mod:`deepstrata.serve.drift`) and ``GET /openapi.json``, whose
request schema is built from the bundle's input features. No /docs page: Swagger UI
would load its scripts from a CDN. Errors: :mod:`deepstrata.serve.handlers`.

>>> from deepstrata.serve.app import create_app                  # doctest: +SKIP
>>> app = create_app(Predictor(deepstrata.load("runs/churn")))     # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from deepstrata.serve import routes
from deepstrata.serve.batching import MicroBatcher
from deepstrata.serve.drift import DriftCollector, DriftWindow, add_drift_route
from deepstrata.serve.guard import OPEN_PATHS, Guard, ServerState
from deepstrata.serve.handlers import install_error_handlers
from deepstrata.serve.metrics import Metrics
from deepstrata.serve.predictor import Predictor
from deepstrata.serve.records import build_models
from deepstrata.serve.settings import ServeSettings
from deepstrata.serve.staging import FileStager

logger = logging.getLogger("deepstrata.serve")


def create_app(predictor: Predictor, settings: ServeSettings | None = None) -> FastAPI:
    """The application serving ``predictor``; ``app.state.serve`` is its :class:`ServerState`."""
    settings = (settings or ServeSettings()).validate()
    state, metrics = ServerState(), Metrics()
    schema = predictor.schema
    _, request_model, response_model = build_models(
        schema,
        predictor.categories,
        settings,
        classes=predictor.classes,
        several=predictor.model.spec.prediction == "labels",
    )
    drift = DriftWindow.of(predictor.model)  # None: a bundle without the reference
    batcher = MicroBatcher(
        predictor.outputs if drift is None else drift.watching(predictor.outputs),
        max_rows=settings.max_batch_rows,
        max_wait=settings.batch_wait_ms / 1000,
        pending=lambda: state.active,
        on_batch=metrics.batch,
        join=predictor.join,
        inline=predictor.inline,
    )
    stager = FileStager(predictor, budget=settings.decode_budget)
    context = routes.Context(
        predictor, settings, state, metrics, batcher, stager, request_model, response_model
    )
    context.drift = drift
    if context.drift is not None:
        metrics.registry.register(DriftCollector(context.drift))
    app = FastAPI(
        title=f"deepstrata model: {schema.target}",
        description=(
            f"Predicts {schema.target!r} ({schema.task}) from {len(schema.inputs)} input "
            'columns. POST /predict with {"records": [{...}, ...]}; GET /schema lists the inputs.'
        ),
        version=_version(),
        lifespan=_lifespan(context),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served by a route, behind the token like /schema
        **_telemetry(),
    )
    app.state.serve, app.state.metrics, app.state.batcher = state, metrics, batcher
    app.state.settings = settings
    app.add_middleware(
        Guard,
        state=state,
        settings=settings,
        metrics=metrics,
        handlers={("POST", "/predict"): routes.predict_handler(context)},
    )
    install_error_handlers(app)
    routes.add_health_routes(app, context)
    routes.add_info_routes(app, context)
    routes.add_predict_route(app, context)
    add_drift_route(app, context)
    if explainable() and settings.output == "probabilities":  # attributions give more away
        routes.add_explain_route(app, context)
    app.openapi = lambda: _openapi(app, context)
    return app


def _lifespan(context: routes.Context):
    """Start the batcher and the file stager, warm the model up in its worker (readiness
    turns 200 after), and stop them on shutdown (the stager first: its last jobs hand the
    removal of their files to the model's worker)."""

    async def warm_up() -> None:
        try:
            await context.batcher.in_worker(
                context.predictor.warm_up, context.settings.max_batch_rows
            )
        except Exception:
            logger.exception("warming the model up failed; readiness stays 503")
            return
        context.state.ready = True
        logger.info("model warmed up (%s backend); ready", context.predictor.backend)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if context.drift is not None:  # its encoder taps, while the server runs
            context.drift.attach()
        context.batcher.start()
        context.stager.start()
        warming = asyncio.get_running_loop().create_task(warm_up())
        try:
            yield
        finally:
            warming.cancel()
            context.state.ready = False
            context.stager.stop()
            await context.batcher.stop()
            if context.drift is not None:
                context.drift.detach()

    return lifespan


def _openapi(app: FastAPI, context: routes.Context) -> dict:
    """The OpenAPI document, with the request schema built from the bundle's inputs and,
    with a token, the bearer scheme on every protected path."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = document.setdefault("components", {}).setdefault("schemas", {})
    request_schema = context.request_model.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    components.update(request_schema.pop("$defs", {}))
    components["PredictRequest"] = request_schema
    if context.settings.token:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        for path, operations in document["paths"].items():
            if path not in OPEN_PATHS:
                for operation in operations.values():
                    operation["security"] = [{"bearer": []}]
    app.openapi_schema = document
    return document


def _telemetry() -> dict:
    """FastAPI's own OpenTelemetry hooks off where no provider is set when the app is made
    (the usual case: this server has its Prometheus /metrics): otherwise FastAPI asks for
    the providers on every request, a fifth of a small request's own time. A provider set up
    before ``serve`` starts (``opentelemetry-instrument deepstrata serve ...``) keeps them."""
    if "telemetry" not in inspect.signature(FastAPI).parameters:  # FastAPI before 0.16x
        return {}
    try:
        from opentelemetry import metrics, trace
        from opentelemetry._logs import get_logger_provider
    except ImportError:
        return {}
    providers = (trace.get_tracer_provider(), metrics.get_meter_provider(), get_logger_provider())
    if any("Proxy" not in type(provider).__name__ for provider in providers):
        return {}  # someone configured OpenTelemetry: leave FastAPI's hooks on
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def explainable() -> bool:
    """``POST /explain`` is served where the explain extra (captum, shap) is installed."""
    from importlib.util import find_spec

    return all(find_spec(name) is not None for name in ("captum", "shap"))


def _version() -> str:
    from deepstrata.version import __version__

    return __version__
