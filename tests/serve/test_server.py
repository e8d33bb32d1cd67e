"""The real server: ``deepstrata serve`` as a process (graceful shutdown, CLI errors) and
uvicorn on a loopback port (chunked bodies over a socket, a bounded load test)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

import httpx
import pytest

from deepstrata.serve.app import create_app
from deepstrata.serve.predictor import Predictor
from deepstrata.serve.settings import ServeSettings
from tests.serve.conftest import live_server, records_of

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LOAD_SECONDS = float(os.environ.get("DEEPSTRATA_SERVE_LOAD_SECONDS", "10"))


def start(cli_script, *args, env=None, stderr=subprocess.DEVNULL):
    """``deepstrata serve ARGS`` as a process; returns (process, base URL) once it listens."""
    process = subprocess.Popen(
        [sys.executable, str(cli_script), "serve", *map(str, args), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )
    line = process.stdout.readline()
    found = re.search(r"on (http://\S+) ", line)
    if not found:
        process.kill()
        raise AssertionError(f"the server did not start: {line!r}")
    threading.Thread(target=process.stdout.read, daemon=True).start()  # drain access logs
    return process, found.group(1)


def poll(client: httpx.Client, path: str, status: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.get(path).status_code == status:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{path} did not answer {status} within {timeout} s")


def test_sigterm_lets_the_request_in_flight_finish_and_exits_0(
    cli_script, fitted_churn_bundle, churn_rows
):
    process, base = start(
        cli_script, fitted_churn_bundle, "--drain-delay", "1", "--graceful-timeout", "10"
    )
    try:
        body = httpx.Request("POST", "/", json={"records": records_of(churn_rows.head(2))}).read()
        with httpx.Client(base_url=base, timeout=20) as client:
            poll(client, "/readyz", 200)
            result: dict = {}

            def slow_upload():
                def chunks():  # chunked: the request is in flight while its body trickles in
                    yield body[:20]
                    time.sleep(2.0)
                    yield body[20:]

                with httpx.Client(base_url=base, timeout=20) as own:
                    result["response"] = own.post("/predict", content=chunks())

            uploader = threading.Thread(target=slow_upload)
            uploader.start()
            deadline = time.monotonic() + 10
            while "deepstrata_http_requests_in_progress 1.0" not in client.get("/metrics").text:
                assert time.monotonic() < deadline, "the slow request never arrived"
                time.sleep(0.02)
            sent = time.monotonic()
            process.send_signal(signal.SIGTERM)
            with httpx.Client(base_url=base, timeout=5) as fresh:  # a new connection
                ready = fresh.get("/readyz")
            assert ready.status_code == 503 and ready.json()["error"]["code"] == "not_ready"
            uploader.join(timeout=20)
        response = result["response"]
        assert response.status_code == 200, response.text
        assert len(response.json()["predictions"]) == 2
        assert process.wait(timeout=15) == 0
        assert time.monotonic() - sent < 10  # within the graceful timeout
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/livez", timeout=2)
    finally:
        if process.poll() is None:
            process.kill()


def raw_exchange(base: str, request: bytes, timeout: float = 20.0) -> socket.socket:
    """A socket to the server at ``base`` that has sent ``request`` (bytes as they are)."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.sendall(request)
    return sock


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """``(status, headers, body)`` of the answer on ``sock``, read until the server closes."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines)
    return int(status_line.split()[1]), headers, body


def test_requests_outliving_the_graceful_timeout_get_a_json_503_and_one_log_line_each(
    cli_script, fitted_churn_bundle, churn_rows, tmp_path
):
    """They used to get uvicorn's plain-text 500, and the log a CancelledError traceback
    each: uvicorn cancels what still runs ``--graceful-timeout`` seconds after SIGTERM."""
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        process, base = start(
            cli_script, fitted_churn_bundle, "--graceful-timeout", "0.5", stderr=stderr
        )
    try:
        body = json.dumps({"records": records_of(churn_rows.head(2))}).encode()
        head = f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        with httpx.Client(base_url=base, timeout=20) as client:
            poll(client, "/readyz", 200)
            # Three requests in flight for good: their bodies stop half way.
            sockets = [raw_exchange(base, head.encode() + body[:20]) for _ in range(3)]
            deadline = time.monotonic() + 10
            while "deepstrata_http_requests_in_progress 3.0" not in client.get("/metrics").text:
                assert time.monotonic() < deadline, "the requests never arrived"
                time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        answers = [read_answer(sock) for sock in sockets]
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
    for status, headers, answer in answers:
        assert status == 503, answer
        assert headers["content-type"] == "application/json" and headers["retry-after"] == "1"
        error = json.loads(answer)["error"]
        assert error["code"] == "not_ready" and "retry" in error["message"]
        assert headers["x-request-id"] == error["request_id"]
    text = log.read_text()
    assert "Traceback" not in text and "CancelledError" not in text, text
    cut_off = [line for line in text.splitlines() if "cut off" in line]
    assert len(cut_off) == 3, text
    assert {answer[1]["x-request-id"] for answer in answers} == {
        line.split()[2] for line in cut_off
    }


def test_cli_refuses_bad_options_with_one_error_line(cli_script, fitted_churn_bundle, tmp_path):
    def run(*args, env=None):
        return subprocess.run(
            [sys.executable, str(cli_script), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **(env or {})},
        )

    cases = [
        (("serve", fitted_churn_bundle, "--backend", "tensorflow"), "--backend: unknown backend"),
        (("serve", fitted_churn_bundle, "--token", "short"), "--token: a token needs at least 16"),
        (("serve", fitted_churn_bundle, "--timeout", "0"), "--timeout: expected a number"),
        (("serve", tmp_path / "missing"), "not a bundle directory"),
        (("export", fitted_churn_bundle, "--format", "tflite"), "--format: unknown format"),
    ]
    for args, expected in cases:
        result = run(*args)
        assert result.returncode == 1, (args, result.stderr)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and expected in errors[0], (args, result.stderr)
        assert "Traceback" not in result.stderr
    # A token from the environment is checked the same way.
    result = run("serve", fitted_churn_bundle, env={"DEEPSTRATA_SERVE_TOKEN": "tiny"})
    assert result.returncode == 1 and "--token" in result.stderr


def test_a_chunked_body_over_a_socket_is_cut_off_at_the_limit(churn_model, churn_rows):
    """(That reading stops at the limit is tested on the ASGI stream, test_guard.py: an
    HTTP/1.1 client sends its whole body before it reads the answer.)"""
    app = create_app(Predictor(churn_model), ServeSettings(max_body_bytes=2048))

    def chunks():
        for _ in range(200):
            yield b" " * 1024

    with live_server(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        response = client.post("/predict", content=chunks())
        assert "content-length" not in response.request.headers
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "body_too_large"
        record = records_of(churn_rows.head(1))
        assert client.post("/predict", json={"records": record}).status_code == 200


@pytest.mark.integration
def test_load_on_loopback_is_answered_without_a_single_error(churn_model, churn_rows):
    """Four clients send single-row requests for LOAD_SECONDS (10 s; more with
    DEEPSTRATA_SERVE_LOAD_SECONDS): every answer is 200."""
    app = create_app(Predictor(churn_model), ServeSettings())
    records = records_of(churn_rows)
    statuses: Counter = Counter()
    latencies: list[float] = []
    with live_server(app) as base:
        stop = time.monotonic() + LOAD_SECONDS

        def client_loop(offset: int):
            with httpx.Client(base_url=base, timeout=10) as client:
                index = offset
                while time.monotonic() < stop:
                    started = time.perf_counter()
                    try:
                        status = client.post(
                            "/predict", json={"records": [records[index % len(records)]]}
                        ).status_code
                    except httpx.TransportError as error:
                        status = type(error).__name__
                    latencies.append(time.perf_counter() - started)
                    statuses[status] += 1
                    index += 4

        threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    latencies.sort()
    total = sum(statuses.values())
    print(
        f"\nload: {total} requests in {LOAD_SECONDS:g} s ({total / LOAD_SECONDS:.0f}/s), "
        f"p50 {latencies[len(latencies) // 2] * 1e3:.1f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99)] * 1e3:.1f} ms, statuses {dict(statuses)}"
    )
    assert set(statuses) == {200}, statuses
    assert total > 10 * LOAD_SECONDS
