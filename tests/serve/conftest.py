"""Fixtures of the server's tests: the session's churn bundle, a small image model, apps on
them, a live server.

Three ways to reach an app, from cheapest: ``serving(...)`` (Starlette's TestClient, one
request at a time), ``asgi_session(app)`` (httpx on the ASGI app in this event loop:
concurrent requests, bodies that trickle in), ``live_server(app)`` (uvicorn on a free
loopback port in a thread: real sockets, chunked bodies, schemathesis over HTTP).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

import deepstrata
from deepstrata.config import FitConfig
from deepstrata.data.schema import Feature, Schema
from deepstrata.data.sources import read_table
from deepstrata.model.member import build_member
from deepstrata.model.model import Model
from deepstrata.preprocess.image import ImagePreprocessor
from deepstrata.preprocess.number import NumberPreprocessor
from deepstrata.preprocess.target import TargetEncoder
from deepstrata.serve.app import create_app
from deepstrata.serve.predictor import Predictor
from deepstrata.serve.settings import ServeSettings
from tests.conftest import make_churn_frame

# The CLI as cli.py registers the commands (registered here too until cli.py does).
CLI_SCRIPT = """
import sys
from deepstrata.cli import app, main
from deepstrata.cli.serve import export, serve
names = {command.name or command.callback.__name__ for command in app.registered_commands}
for command in (serve, export):
    if command.__name__ not in names:
        app.command()(command)
main(sys.argv[1:])
"""


@pytest.fixture(scope="session")
def churn_model(fitted_churn_bundle):
    """The session's churn bundle, loaded (read-only: do not change it)."""
    return deepstrata.load(fitted_churn_bundle)


@pytest.fixture(scope="session")
def image_model() -> Model:
    """An untrained network on an image column and a number column (no fit needed: the
    server's work is the same for any weights)."""
    frame = pd.DataFrame({"size": [1.0, 2.0, 3.0], "label": ["a", "b", "a"]})
    table = read_table(frame)
    preprocessors = {
        "photo": ImagePreprocessor(size=32),
        "size": NumberPreprocessor().fit(frame["size"], table),
    }
    architecture = {
        "task": "binary",
        "num_classes": 2,
        "hidden_dims": [8],
        "dropout": 0.0,
        "options": {"image_width": 4, "image_depth": 1},
    }
    schema = Schema(
        [
            Feature("photo", "image"),
            Feature("size", "number"),
            Feature("label", "category", role="target"),
        ],
        target="label",
        task="binary",
    )
    return Model(
        schema=schema,
        members=[build_member(preprocessors, architecture)],
        target_encoder=TargetEncoder("binary").fit(frame["label"], table),
        config=FitConfig(),
    )


@pytest.fixture
def churn_rows() -> pd.DataFrame:
    """Unlabelled rows of the churn table, as a client would send them."""
    return make_churn_frame(rows=40, seed=7).drop(columns=["churned", "customer_id"])


def records_of(frame: pd.DataFrame) -> list[dict]:
    """DataFrame rows -> JSON records (missing values as null)."""
    return [
        {k: (None if pd.isna(v) else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def wait_ready(get, timeout: float = 20.0) -> None:
    """Poll ``get("/readyz")`` until 200 (the warm-up runs in the background)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if get("/readyz").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError(f"not ready after {timeout} s")


@contextlib.contextmanager
def serving(model, **settings) -> Iterator:
    """A TestClient on an app serving ``model``, warmed up."""
    from fastapi.testclient import TestClient

    app = create_app(Predictor(model), ServeSettings(**settings))
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_ready(client.get)
        yield client


@contextlib.asynccontextmanager
async def asgi_session(app) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on ``app`` in the running event loop, its lifespan started and warmed up."""
    import asyncio

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for _ in range(1000):
                if (await client.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.02)
            yield client


@contextlib.contextmanager
def live_server(app, *, log_level: str = "warning", access_log: bool = False) -> Iterator[str]:
    """The server ``deepstrata serve`` runs, serving ``app`` on a free loopback port in a
    thread; yields its base URL."""
    from deepstrata.serve.server import build, listen

    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = build(app, app.state.settings, log_level=log_level, access_log=access_log)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=5) as client:
            deadline = time.monotonic() + 20
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.02)
            wait_ready(client.get)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def staged_folders(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("deepstrata-serve-"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def cli_script(tmp_path_factory) -> Path:
    """A script that runs the deepstrata CLI with serve and export registered."""
    path = tmp_path_factory.mktemp("cli") / "deepstrata_cli.py"
    path.write_text(CLI_SCRIPT)
    return path
