"""The ASGI layer every request passes before the application sees it.

In order: a request id (the client's ``X-Request-ID`` when it is short and plain, else
a new one; echoed on every response), the size of the request line and headers (431),
the bearer token, the per-token rate limit (429, see :mod:`deepstrata.serve.limits`),
the concurrency limit (503 at once, with ``Retry-After``), the
body-size limit, the per-request timeout (504), a JSON 500 for anything unexpected
(logged with its traceback, answered without it), and the metrics of every answer. A
client that goes away before its answer is neither an error nor answered: it is counted
under status 499 (nginx's "client closed request"). A request still running when the
server stops waiting for it (``graceful_timeout`` after SIGTERM, when uvicorn cancels
it) is answered 503 with ``Retry-After`` and logged in one line, not a traceback.

Why the head is measured here too: h11 (``max_header_bytes``, see
:mod:`deepstrata.serve.protocol`) limits only a head that arrives in pieces; one that
arrives whole in one read, as a 200 KB URL on loopback does, is parsed whatever its size.

Why the body limit is counted here, on the ASGI receive stream: ``Content-Length``
can lie or be absent (``Transfer-Encoding: chunked``), so only the bytes actually
read can be trusted. A declared length above the limit is refused before anything
is read; otherwise reading stops, and the request is answered 413, as soon as the
count passes the limit. (Starlette's ``RequestBodyLimitMiddleware`` counts the same
way, but answers the declared-length case in plain text; every error here is JSON.)
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import ClientDisconnect

from deepstrata.serve.errors import REQUEST_ID_HEADER, ApiError, error_body, error_headers
from deepstrata.serve.limits import RateLimit, client_key
from deepstrata.serve.metrics import Metrics
from deepstrata.serve.settings import ServeSettings

logger = logging.getLogger("deepstrata.serve")

OPEN_PATHS = frozenset({"/livez", "/readyz"})  # answered without the token: probes
UNLIMITED_PATHS = frozenset({"/livez", "/readyz", "/metrics"})  # no concurrency limit, no timeout
_PLAIN_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # used with fullmatch: "$" allows a "\n"
CLIENT_CLOSED = 499  # the status nginx logs for a client that left before its answer


@dataclass
class ServerState:
    """What the endpoints and the server share: readiness and the requests in progress."""

    ready: bool = False  # the model is loaded and warmed up
    draining: bool = False  # SIGTERM seen: readiness answers 503, in-flight requests finish
    active: int = 0  # requests in progress under the concurrency limit


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__("body_too_large", f"the request body is larger than {limit} bytes")


class HeadersTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            "headers_too_large", f"the request line and headers are longer than {limit} bytes"
        )


class Guard:
    """Pure ASGI middleware: ``app.add_middleware(Guard, state=..., settings=..., metrics=...)``."""

    def __init__(
        self,
        app,
        *,
        state: ServerState,
        settings: ServeSettings,
        metrics: Metrics,
        handlers: dict[tuple[str, str], Callable] | None = None,
    ) -> None:
        self.app = app
        # (method, path) -> handler(exchange): answered here, past the application's
        # routing (see deepstrata.serve.routes.predict_handler)
        self.handlers = handlers or {}
        self.state = state
        self.settings = settings
        self.metrics = metrics
        self._token = settings.token.encode() if settings.token else None
        self.rate_limit = RateLimit(settings.rate_limit) if settings.rate_limit else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(scope, receive, send, self.settings.max_body_bytes)
        path, limited = scope["path"], scope["path"] not in UNLIMITED_PATHS
        start = time.perf_counter()
        try:
            if head_bytes(scope) > self.settings.max_header_bytes:
                await exchange.refuse(HeadersTooLarge(self.settings.max_header_bytes))
            elif self._token is not None and path not in OPEN_PATHS and not self._authorized(scope):
                await exchange.refuse(
                    ApiError(
                        "unauthorized",
                        "a valid bearer token is required (Authorization: Bearer <token>)",
                        headers={"WWW-Authenticate": "Bearer"},
                    )
                )
            elif limited and (wait := self._rate_limited(scope)):
                await exchange.refuse(
                    ApiError(
                        "rate_limited",
                        f"more than {self.settings.rate_limit:g} requests a minute; retry "
                        f"in {wait} s",
                        headers={"Retry-After": str(wait)},
                    )
                )
            elif limited and self.state.active >= self.settings.max_concurrency:
                await exchange.refuse(
                    ApiError(
                        "overloaded",
                        f"the server is answering {self.settings.max_concurrency} requests "
                        "already; retry shortly",
                        headers={"Retry-After": "1"},
                    )
                )
            elif exchange.declared_length() > self.settings.max_body_bytes:
                await exchange.refuse(BodyTooLarge(self.settings.max_body_bytes))
            elif limited:
                self.state.active += 1
                self.metrics.in_progress.inc()
                try:
                    await self._within_timeout(exchange)
                finally:
                    self.state.active -= 1
                    self.metrics.in_progress.dec()
            else:
                await self._run(exchange)
        except asyncio.CancelledError:
            if not self.state.draining:
                raise
            await self._cut_off(exchange)
        finally:
            status = exchange.status or (CLIENT_CLOSED if exchange.disconnected else 500)
            self.metrics.observe(path, scope["method"], status, time.perf_counter() - start)

    async def _within_timeout(self, exchange: _Exchange) -> None:
        try:
            async with asyncio.timeout(self.settings.timeout):
                await self._run(exchange)
        except TimeoutError:
            if exchange.started:
                logger.error("request %s timed out after its answer began", exchange.request_id)
                return
            await exchange.refuse(
                ApiError("timeout", f"the request took longer than {self.settings.timeout:g} s")
            )

    async def _run(self, exchange: _Exchange) -> None:
        scope = exchange.scope
        handler = self.handlers.get((scope["method"], scope["path"]))
        try:
            if handler is not None:
                await handler(exchange)
            else:
                await self.app(scope, exchange.receive, exchange.send)
        except BodyTooLarge as error:  # raised from a read outside the app's own handlers
            if not exchange.started:
                await exchange.refuse(error)
        except Exception as error:
            # Starlette raises ClientDisconnect when the body's read meets the disconnect;
            # anything else raised once the client is gone is also the client's leaving.
            if isinstance(error, ClientDisconnect) or exchange.disconnected:
                logger.info("request %s: the client closed the connection", exchange.request_id)
                exchange.disconnected = True
                return
            logger.exception("request %s failed", exchange.request_id)
            if not exchange.started:
                await exchange.refuse(ApiError("internal_error", "internal error"))

    async def _cut_off(self, exchange: _Exchange) -> None:
        """uvicorn cancels the requests still running ``graceful_timeout`` seconds after
        SIGTERM: each is answered 503 (retry elsewhere) and logged once, rather than
        answered in plain text by uvicorn with a traceback in the log."""
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()  # the cancellation is answered here; nothing above waits on it
        logger.warning(
            "request %s cut off: still running %g s after the shutdown began "
            "(--graceful-timeout); answered 503",
            exchange.request_id,
            self.settings.graceful_timeout,
        )
        if not exchange.started:
            await exchange.refuse(
                ApiError(
                    "not_ready",
                    "the server shut down before the request was answered; retry it",
                    headers={"Retry-After": "1"},
                )
            )

    def _rate_limited(self, scope) -> int:
        """Whole seconds until this client's next request may go (0: it goes now)."""
        if self.rate_limit is None:
            return 0
        return math.ceil(self.rate_limit.wait(client_key(scope)))

    def _authorized(self, scope) -> bool:
        header = _header(scope, b"authorization") or b""
        scheme, _, credentials = header.partition(b" ")
        if scheme.lower() != b"bearer" or self._token is None:
            return False
        return hmac.compare_digest(credentials.strip(), self._token)


class _Exchange:
    """One request's receive and send, wrapped: bytes counted, status and start recorded."""

    def __init__(self, scope, receive, send, max_body_bytes: int) -> None:
        given = (_header(scope, REQUEST_ID_HEADER.encode()) or b"").decode("latin-1")
        self.request_id = given if _PLAIN_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = self.request_id
        self.scope = scope
        self._receive = receive
        self._send = send
        self.limit = max_body_bytes
        self.read = 0
        self.overflowed = False
        self.started = False
        self.replaced = False  # the application's answer was swapped for a 413
        self.disconnected = False  # the client went away (http.disconnect was received)
        self.status: int | None = None

    def declared_length(self) -> int:
        value = _header(self.scope, b"content-length")
        try:
            return int(value) if value is not None else 0
        except ValueError:
            return 0  # h11 refuses a malformed Content-Length before the application runs

    async def receive(self):
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self.disconnected = True
        elif message["type"] == "http.request":
            self.read += len(message.get("body", b""))
            if self.read > self.limit:
                self.overflowed = True
                raise BodyTooLarge(self.limit)
        return message

    async def send(self, message) -> None:
        if self.replaced:
            return
        if message["type"] == "http.response.start":
            if self.overflowed and not self.started:
                # Whatever the application made of the cut-off body, the answer is 413.
                self.replaced = True
                await self.refuse(BodyTooLarge(self.limit))
                return
            self.started = True
            self.status = message["status"]
            message = {**message, "headers": [*message.get("headers", []), *self._headers()]}
        await self._send(message)

    async def refuse(self, error: ApiError) -> None:
        body = error_body(error.code, error.message, self.request_id, error.details)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *((k.lower().encode(), v.encode()) for k, v in error.headers.items()),
            *self._headers(),
        ]
        self.started = True
        self.status = error.status
        await self._send(
            {"type": "http.response.start", "status": error.status, "headers": headers}
        )
        await self._send({"type": "http.response.body", "body": body})

    def _headers(self) -> list[tuple[bytes, bytes]]:
        return error_headers(self.request_id)


def head_bytes(scope) -> int:
    """About the bytes of the request line and headers as sent (method, target, names,
    values, separators)."""
    target = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
    fields = sum(len(name) + len(value) + 4 for name, value in scope.get("headers", []))
    return len(scope.get("method", "")) + target + 12 + fields


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value
    return None
