"""Error responses: one JSON shape for every status, never a traceback or a path.

>>> json.loads(error_body("timeout", "the request took longer than 10 s", "abc"))
{'error': {'code': 'timeout', 'message': 'the request took longer than 10 s', 'request_id': 'abc'}}
"""

from __future__ import annotations

import json
import uuid
from http import HTTPStatus

REQUEST_ID_HEADER = "x-request-id"

# code -> HTTP status: the table the README documents.
CODES = {
    "invalid_input": 422,
    "unauthorized": 401,
    "not_found": 404,
    "method_not_allowed": 405,
    "body_too_large": 413,
    "batch_too_large": 413,
    "overloaded": 503,
    "not_ready": 503,
    "timeout": 504,
    "internal_error": 500,
    "bad_request": 400,
    "request_timeout": 408,
    "headers_too_large": 431,
    "rate_limited": 429,
}


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message", "request_id"}}`` with ``status``."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        details: list[dict] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or CODES[code]
        self.headers = headers or {}
        self.details = details


def error_body(
    code: str, message: str, request_id: str | None, details: list[dict] | None = None
) -> bytes:
    error: dict = {"code": code, "message": message, "request_id": request_id}
    if details is not None:
        error["details"] = details
    return json.dumps({"error": error}).encode()


def error_headers(request_id: str) -> list[tuple[bytes, bytes]]:
    """The headers every answer carries: its request id, no sniffing, no caching."""
    return [
        (REQUEST_ID_HEADER.encode(), request_id.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"cache-control", b"no-store"),
    ]


def raw_error(status: int, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 error response that closes the connection, for the connection layer
    (below the application: no request, so a new request id)."""
    request_id = uuid.uuid4().hex
    body = error_body(code, message, request_id)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *error_headers(request_id),
    ]
    head = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()
    return (
        head + b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n" + body
    )


def code_for_status(status: int) -> str:
    """The code of an error raised as a bare status (Starlette's 404 and 405)."""
    return {
        400: "bad_request",
        401: "unauthorized",
        404: "not_found",
        405: "method_not_allowed",
        408: "request_timeout",
        413: "body_too_large",
        431: "headers_too_large",
        429: "rate_limited",
        503: "overloaded",
        504: "timeout",
    }.get(status, "internal_error" if status >= 500 else "bad_request")
