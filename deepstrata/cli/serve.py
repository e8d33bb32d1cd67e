"""``deepstrata serve`` and ``deepstrata export``: typed command functions for the CLI.

Registered in ``deepstrata/cli.py`` with ``app.command()(serve)`` and
``app.command()(export)``. FastAPI, uvicorn, ONNX and torch are imported inside the
functions, so ``deepstrata --help`` stays fast.
"""

from __future__ import annotations

import inspect
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Annotated

import typer

from deepstrata.serve.settings import TOKEN_ENV, ServeSettings

BACKENDS = ("torch", "onnx")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(
    bundle: Annotated[Path, typer.Argument(help="A bundle directory written by `deepstrata fit`.")],
    host: Annotated[
        str,
        typer.Option(help="Address to listen on; 0.0.0.0 (every interface) only when asked."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8000,
    backend: Annotated[
        str, typer.Option(help="torch | onnx (the export from `deepstrata export`).")
    ] = "torch",
    onnx: Annotated[
        Path | None, typer.Option(help="The ONNX export to serve. [<bundle>-onnx]")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help=f"Bearer token required by /predict, /schema, /metrics and /openapi.json "
            f"(at least 16 characters). Better: the {TOKEN_ENV} environment variable, which "
            "other users cannot read in the process list.",
            show_default=False,
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            help="Threads of one forward pass (torch, ONNX Runtime). [half the cores, 1 to 4]"
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option(help="critical | error | warning | info | debug.")
    ] = "info",
    **limits,
) -> None:
    """Serve a bundle over HTTP: POST /predict, GET /livez /readyz /schema /metrics."""
    _check(backend, onnx, log_level, threads, port)
    settings = ServeSettings(
        **limits, token=token if token is not None else token_from_environment()
    ).validate()

    import torch

    from deepstrata.model.model import load
    from deepstrata.serve import server

    # Small batches gain little from many threads, and on a shared machine threads that
    # wait on each other make a single-row forward pass tens of times slower.
    torch.set_num_threads(threads or default_threads())
    from deepstrata.forecast.fit import is_forecaster, load_forecaster
    from deepstrata.serve.app import create_app
    from deepstrata.serve.predictor import Predictor

    if is_forecaster(bundle):  # POST /forecast: a history in, quantile forecasts out
        from deepstrata.serve.forecast import create_forecast_app

        app = create_forecast_app(load_forecaster(bundle), settings)
        sock = server.listen(host, port)
        print(f"serving forecaster {bundle} on port {sock.getsockname()[1]}", flush=True)
        server.run(app, sock, settings, log_level=log_level)
        return
    model = load(bundle)  # a bad bundle fails here, before the port is taken
    if backend == "onnx":
        from deepstrata.export.onnx import with_onnx_networks

        model = with_onnx_networks(model, bundle, onnx)
    app = create_app(Predictor(model, backend=backend), settings)
    sock = server.listen(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    if host not in LOOPBACK and settings.token is None:
        print(
            f"warning: listening on {host} without a token: anyone who reaches this port can "
            f"call /predict (set {TOKEN_ENV} or pass --token)",
            file=sys.stderr,
        )
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(f"serving {bundle} on http://{shown}:{bound_port} ({backend} backend)", flush=True)
    server.run(app, sock, settings, log_level=log_level)


def _limit_parameters() -> list[inspect.Parameter]:
    """A flag per limit of :class:`ServeSettings`, its help and default from the field."""
    parameters = []
    for setting in fields(ServeSettings):
        if setting.name == "token":
            continue
        kind = {"int": int, "float": float, "str": str}[setting.type]
        parameters.append(
            inspect.Parameter(
                setting.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=setting.default,
                annotation=Annotated[kind, typer.Option(help=setting.metadata["help"])],
            )
        )
    return parameters


serve.__signature__ = inspect.Signature(
    [
        *(
            p
            for p in inspect.signature(serve, eval_str=True).parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        ),
        *_limit_parameters(),
    ]
)


def _check(backend: str, onnx, log_level: str, threads, port: int) -> None:
    """ConfigError naming the flag for a serve option it cannot honour, before any work."""
    from deepstrata.errors import ConfigError

    require("deepstrata serve", "fastapi", "uvicorn", "prometheus_client")
    if backend == "onnx":
        require("--backend onnx", "onnxruntime")
    if backend not in BACKENDS:
        raise ConfigError(
            f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}",
            option="--backend",
        )
    if onnx is not None and backend != "onnx":
        raise ConfigError("--onnx names an export for --backend onnx", option="--onnx")
    if log_level not in ("critical", "error", "warning", "info", "debug"):
        raise ConfigError(f"unknown log level {log_level!r}", option="--log-level")
    if threads is not None and threads < 1:
        raise ConfigError(f"expected at least 1 thread, got {threads}", option="--threads")
    if not 0 <= port <= 65535:
        raise ConfigError(f"expected a port from 0 to 65535, got {port}", option="--port")


def require(what: str, *modules: str) -> None:
    """MissingPackageError naming the ``serve`` extra when one of ``modules`` is not installed."""
    from importlib.util import find_spec

    from deepstrata.errors import MissingPackageError

    missing = [name for name in modules if find_spec(name) is None]
    if missing:
        raise MissingPackageError(f"{what} needs {', '.join(missing)}", extra="serve")


def token_from_environment() -> str | None:
    """``DEEPSTRATA_SERVE_TOKEN``, or None when it is not set. Set but empty (or blank, or
    with whitespace around it) is a ConfigError: read as "no token", it would turn
    authentication off without a word."""
    from deepstrata.errors import ConfigError

    value = os.environ.get(TOKEN_ENV)
    if value is None:
        return None
    if not value.strip():
        raise ConfigError(
            "is set but empty; set it to a token of at least 16 characters, or unset it to "
            "serve without one",
            option=TOKEN_ENV,
        )
    if value != value.strip():
        raise ConfigError(
            "starts or ends with whitespace, which no Authorization header can carry; remove it",
            option=TOKEN_ENV,
        )
    return value


def default_threads() -> int:
    """Half the cores, at least 1 and at most 4."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def export(
    bundle: Annotated[Path, typer.Argument(help="A bundle directory written by `deepstrata fit`.")],
    export_format: Annotated[
        str, typer.Option("--format", help="onnx (the only format).")
    ] = "onnx",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Directory to write. [<bundle>-onnx]"),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing export.")] = False,
) -> None:
    """Export a bundle's networks to ONNX, checked against PyTorch (preprocessing stays in Python)."""
    from deepstrata.errors import ConfigError

    if export_format != "onnx":
        raise ConfigError(f"unknown format {export_format!r}; expected onnx", option="--format")
    require("deepstrata export", "onnx", "onnxscript", "onnxruntime")
    from deepstrata.export.onnx import ATOL, RTOL, default_export_path, export_onnx

    target = output or default_export_path(bundle)
    record = export_onnx(
        bundle, target, overwrite=overwrite, report=lambda line: print(line, file=sys.stderr)
    )
    count = len(record["members"])
    print(
        f"{count} network{'s' if count > 1 else ''} exported to {target}; ONNX Runtime matches "
        f"PyTorch within {ATOL:g} + {RTOL:g}·|value| on {record['check']['rows']} rows "
        f"(serve it with: deepstrata serve {bundle} --backend onnx"
        + (f" --onnx {target}" if output is not None else "")
        + ")"
    )
