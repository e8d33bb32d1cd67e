"""The HTTP edges over a real socket (issue 24, point 11): malformed and oversized heads
answered in JSON, idle and slow connections closed, no query string in the access log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time

import pytest

from deepstrata.serve.app import create_app
from deepstrata.serve.predictor import Predictor
from deepstrata.serve.protocol import ACCESS_LOGGER
from deepstrata.serve.settings import ServeSettings
from tests.serve.conftest import asgi_session, live_server

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HEADER_TIMEOUT = 0.5  # seconds
CLOSED_WITHIN = 3.0  # seconds: the timeouts plus room for a busy machine


def connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=CLOSED_WITHIN + 2)


def read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took
    (a socket timeout, the server never closing, fails the test)."""
    started, data = time.monotonic(), b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data, time.monotonic() - started


def json_error(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), answer[:300]
    return status, json.loads(body)["error"]


def send_slowly(sock: socket.socket, data: bytes, seconds: float) -> None:
    """``data`` a byte at a time over ``seconds`` (stopping when the server closes)."""
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return
        time.sleep(seconds / len(data))


@pytest.fixture(scope="module")
def base(image_model):
    settings = ServeSettings(header_timeout=HEADER_TIMEOUT, keep_alive=HEADER_TIMEOUT)
    with live_server(create_app(Predictor(image_model), settings)) as url:
        yield url


def test_malformed_and_oversized_heads_are_answered_in_json(base):
    """uvicorn used to answer these in plain text ("Invalid HTTP request received.")."""
    cases = [
        (b"GET /livez?q=" + b"a" * 200_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431),
        (b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 2_000_000 + b"\r\n\r\n", 431),
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
        (b"GET /livez HTTP/1.1\r\nHost: x\r\nContent-Length: many\r\n\r\n", 400),
    ]
    for request, expected in cases:
        sock = connect(base)
        with contextlib.suppress(OSError):  # closed once past the limit; the answer waits
            sock.sendall(request)
        answer, _ = read_until_closed(sock)
        status, error = json_error(answer)
        assert status == expected, answer[:300]
        assert error["code"] == {431: "headers_too_large", 400: "bad_request"}[expected]
        assert len(error["request_id"]) == 32
    with connect(base) as sock:  # the server goes on answering
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")


def test_a_head_that_arrives_whole_is_measured_too(image_model):
    """h11 limits only a head that arrives in pieces; the guard measures a whole one."""
    app = create_app(Predictor(image_model), ServeSettings())  # 16 KiB

    async def main():
        async with asgi_session(app) as client:
            big = await client.get("/livez", headers={"x-big": "b" * 20_000})
            small = await client.get("/livez", headers={"x-small": "s" * 15_000})
            return big, small

    big, small = asyncio.run(main())
    assert big.status_code == 431 and big.json()["error"]["code"] == "headers_too_large"
    assert small.status_code == 200


def test_idle_and_slow_connections_are_closed(base):
    """A connection that sent nothing, or sent its head a byte at a time, was held open for
    as long as the client liked: file descriptors for a patient client."""
    idle = connect(base)
    answer, took = read_until_closed(idle)
    assert answer == b"" and took < CLOSED_WITHIN  # nothing asked, nothing answered

    slow = connect(base)
    started = time.monotonic()
    send_slowly(slow, b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 40, 4 * HEADER_TIMEOUT)
    answer, _ = read_until_closed(slow)
    assert time.monotonic() - started < CLOSED_WITHIN + 4 * HEADER_TIMEOUT
    status, error = json_error(answer)
    assert status == 408 and error["code"] == "request_timeout"

    # Answered at once (a probe reads no body), then the body trickles: read for a while only.
    trickle = connect(base)
    trickle.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
    started = time.monotonic()
    send_slowly(trickle, b"y" * 100, 8 * HEADER_TIMEOUT)
    answer, _ = read_until_closed(trickle)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert time.monotonic() - started < 8 * HEADER_TIMEOUT  # closed before the body ended

    kept = connect(base)
    kept.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
    answer, took = read_until_closed(kept)
    assert answer.startswith(b"HTTP/1.1 200 ") and took < CLOSED_WITHIN  # keep-alive ends


def test_the_access_log_has_no_query_strings(image_model):
    """A token put in a URL (?token=...) used to land in the access log."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Collect()
    app = create_app(Predictor(image_model), ServeSettings())
    with live_server(app, log_level="info", access_log=True) as url:
        logging.getLogger(ACCESS_LOGGER).addHandler(handler)
        try:
            for path in ("/livez?token=s3cret-value", "/nowhere?email=a@b.example"):
                with connect(url) as sock:
                    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                    sock.recv(65536)
        finally:
            logging.getLogger(ACCESS_LOGGER).removeHandler(handler)
    assert any('"GET /livez HTTP/1.1" 200' in line for line in lines), lines
    assert any('"GET /nowhere HTTP/1.1" 404' in line for line in lines), lines
    assert not any("s3cret" in line or "a@b" in line or "?" in line for line in lines), lines
