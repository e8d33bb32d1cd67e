"""The ASGI guard: body size counted as read, concurrency limit, timeout."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from deepstrata.serve.app import create_app
from deepstrata.serve.guard import Guard, ServerState
from deepstrata.serve.metrics import Metrics
from deepstrata.serve.predictor import Predictor
from deepstrata.serve.settings import ServeSettings
from tests.serve.conftest import asgi_session, records_of, serving

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LIMIT = 4096


def body_of(churn_rows, rows: int) -> bytes:
    records = records_of(churn_rows.head(1)) * rows
    return json.dumps({"records": records}).encode()


def test_a_declared_length_above_the_limit_is_413_before_reading(churn_model, churn_rows):
    with serving(churn_model, max_body_bytes=LIMIT) as client:
        body = body_of(churn_rows, 100)
        assert len(body) > LIMIT
        response = client.post("/predict", content=body)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "body_too_large"
        assert f"larger than {LIMIT} bytes" in response.json()["error"]["message"]
        small = body_of(churn_rows, 2)
        assert len(small) < LIMIT and client.post("/predict", content=small).status_code == 200


def test_a_chunked_body_is_cut_off_once_the_bytes_read_pass_the_limit(churn_model, churn_rows):
    """No Content-Length: the guard counts what it reads, and stops reading."""
    app = create_app(Predictor(churn_model), ServeSettings(max_body_bytes=LIMIT))
    sent = []

    async def trickle():
        for _ in range(100):  # 100 KiB in all, far above the limit
            sent.append(1024)
            yield b" " * 1024

    async def main():
        async with asgi_session(app) as client:
            response = await client.post("/predict", content=trickle())
            assert "content-length" not in response.request.headers
            return response

    response = asyncio.run(main())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert sum(sent) <= LIMIT + 2 * 1024  # reading stopped right after the limit


def test_a_content_length_that_understates_the_body_does_not_help():
    """A raw ASGI exchange where the header claims 10 bytes and the stream brings more."""
    reached = []

    async def application(scope, receive, send):
        while True:
            message = await receive()
            reached.append(len(message.get("body", b"")))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guard = Guard(
        application,
        state=ServerState(ready=True),
        settings=ServeSettings(max_body_bytes=100),
        metrics=Metrics(),
    )
    chunks = [b"x" * 60, b"x" * 60, b"x" * 60]
    sent: list[dict] = []

    async def receive():
        body = chunks.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(chunks)}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict",
        "headers": [(b"content-length", b"10")],
    }
    asyncio.run(guard(scope, receive, send))
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["error"]["code"] == "body_too_large"
    assert reached == [60]  # the second chunk passed the limit and was never handed on
    assert chunks == [b"x" * 60]  # and the third was never read


def test_requests_beyond_the_concurrency_limit_are_503_at_once(churn_model, churn_rows):
    app = create_app(Predictor(churn_model), ServeSettings(max_concurrency=1))
    release = asyncio.Event()
    body = body_of(churn_rows, 1)

    async def held():  # a request in flight until released
        yield body[:10]
        await release.wait()
        yield body[10:]

    async def main():
        async with asgi_session(app) as client:
            first = asyncio.create_task(client.post("/predict", content=held()))
            while app.state.serve.active < 1:
                await asyncio.sleep(0.005)
            started = time.perf_counter()
            second = await client.post("/predict", content=body)
            waited = time.perf_counter() - started
            probe = await client.get("/readyz")  # probes are not limited
            release.set()
            return await first, second, waited, probe

    first, second, waited, probe = asyncio.run(main())
    assert second.status_code == 503 and waited < 1.0
    assert second.json()["error"]["code"] == "overloaded"
    assert second.headers["retry-after"] == "1"
    assert probe.status_code == 200
    assert first.status_code == 200, first.text


def test_a_request_slower_than_the_timeout_is_504(churn_model, churn_rows):
    app = create_app(Predictor(churn_model), ServeSettings(timeout=0.2))
    body = body_of(churn_rows, 1)

    async def slow():
        yield body[:10]
        await asyncio.sleep(2)
        yield body[10:]

    async def main():
        async with asgi_session(app) as client:
            started = time.perf_counter()
            response = await client.post("/predict", content=slow())
            return (
                response,
                time.perf_counter() - started,
                await client.post("/predict", content=body),
            )

    response, took, after = asyncio.run(main())
    assert response.status_code == 504, response.text
    assert response.json()["error"]["code"] == "timeout"
    assert took < 1.5
    assert after.status_code == 200  # the server goes on
    assert app.state.serve.active == 0


@pytest.mark.parametrize("rows", [1, 3])
def test_a_forward_pass_slower_than_the_timeout_is_504(churn_model, churn_rows, rows):
    """The caller gets 504 while the batch finishes in the worker thread; nothing leaks."""
    model = churn_model

    class Slow(Predictor):
        def outputs(self, frame):
            time.sleep(0.4)
            return super().outputs(frame)

    app = create_app(Slow(model), ServeSettings(timeout=0.1, max_concurrency=1))

    async def main():
        async with asgi_session(app) as client:
            response = await client.post("/predict", content=body_of(churn_rows, rows))
            active = app.state.serve.active
            # With one slot, a request still holding it would make this a 503.
            return response, active, await client.get("/schema")

    response, active, after = asyncio.run(main())
    assert response.status_code == 504
    assert active == 0 and after.status_code == 200


async def raw_call(app, scope_headers, chunks):
    """One POST /predict through ``app`` as a server would make it: ``receive`` hands out
    ``chunks`` (dicts: ASGI messages), then waits for ever. Returns the messages sent."""
    sent: list[dict] = []

    async def receive():
        if chunks:
            return chunks.pop(0)
        await asyncio.sleep(3600)

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "headers": scope_headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)
    return sent


def test_a_client_that_disconnects_mid_upload_is_499_without_a_traceback(
    churn_model, churn_rows, caplog
):
    app = create_app(Predictor(churn_model), ServeSettings())
    body = body_of(churn_rows, 3)
    chunks = [
        {"type": "http.request", "body": body[:20], "more_body": True},
        {"type": "http.disconnect"},
    ]
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]

    async def main():
        async with app.router.lifespan_context(app):
            while not app.state.serve.ready:
                await asyncio.sleep(0.01)
            with caplog.at_level("DEBUG", logger="deepstrata.serve"):
                return await raw_call(app, headers, chunks)

    sent = asyncio.run(main())
    assert sent == []  # nobody to answer
    assert not [r for r in caplog.records if r.levelno >= 30 or r.exc_info]
    text = app.state.metrics.text().decode()
    assert 'endpoint="/predict",method="POST",status="499"} 1.0' in text
    assert 'status="500"' not in text


def test_a_request_id_with_a_trailing_newline_is_not_echoed():
    """``$`` matches before a final newline; the id must be plain through to its end."""

    async def application(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guard = Guard(
        application, state=ServerState(ready=True), settings=ServeSettings(), metrics=Metrics()
    )
    sent = asyncio.run(raw_call(guard, [(b"x-request-id", b"trace-42\n")], []))
    echoed = dict(sent[0]["headers"])[b"x-request-id"]
    assert echoed != b"trace-42\n" and len(echoed) == 32


@pytest.mark.parametrize("draining", [True, False])
def test_a_request_cancelled_by_the_shutdown_is_a_json_503_in_one_log_line(draining, caplog):
    """(The real server: test_server.py.) Outside a shutdown a cancellation is not ours to
    answer: it goes on up."""
    started = asyncio.Event()

    async def application(scope, receive, send):
        started.set()
        await asyncio.sleep(3600)

    state = ServerState(ready=True, draining=draining)
    guard = Guard(application, state=state, settings=ServeSettings(), metrics=Metrics())

    async def main():
        task = asyncio.create_task(raw_call(guard, [], []))
        await started.wait()
        task.cancel()
        with caplog.at_level("INFO", logger="deepstrata.serve"):
            try:
                return await task
            except asyncio.CancelledError:
                return None

    sent = asyncio.run(main())
    if not draining:
        assert sent is None and not caplog.records
        return
    assert sent[0]["status"] == 503 and (b"retry-after", b"1") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["error"]["code"] == "not_ready"
    [record] = caplog.records
    assert "cut off" in record.getMessage() and record.exc_info is None
    assert state.active == 0
