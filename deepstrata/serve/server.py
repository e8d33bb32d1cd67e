"""uvicorn, with a shutdown that load balancers can follow.

On SIGTERM (or Ctrl+C): readiness turns 503 at once; after ``drain_delay`` seconds
(0 by default: a load balancer that polls /readyz needs a few) the port closes,
requests in flight get up to ``graceful_timeout`` seconds to finish (uvicorn's
``timeout_graceful_shutdown``), those still running then are answered 503 (see
:mod:`deepstrata.serve.guard`), and the process exits with status 0. A second signal
during the delay skips the rest of it.

The connection layer is :class:`deepstrata.serve.protocol.ServeProtocol` (JSON errors,
a deadline per request head), with uvicorn's head-size limit, keep-alive and access log
(without query strings) set from the settings; no WebSocket (no route takes one).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import socket
import sys
import threading
from collections.abc import Iterator

import uvicorn

from deepstrata.errors import ConfigError
from deepstrata.serve.guard import ServerState
from deepstrata.serve.protocol import ServeProtocol, hide_query_strings
from deepstrata.serve.settings import ServeSettings

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SWITCH_INTERVAL = 0.0002  # seconds
CUT_OFF_WAIT = 2.0  # seconds the requests cut off at the graceful timeout get to answer


class GracefulServer(uvicorn.Server):
    """``uvicorn.Server`` that marks ``state.draining`` on a stop signal, waits
    ``drain_delay`` before closing the port, and exits cleanly (the signal is not raised
    again once the server has shut down)."""

    def __init__(self, config: uvicorn.Config, *, state: ServerState, drain_delay: float) -> None:
        super().__init__(config)
        self.state = state
        self.drain_delay = drain_delay
        self._timer: threading.Timer | None = None

    def handle_exit(self, sig: int, frame) -> None:
        self.state.draining = True
        if self.drain_delay > 0 and self._timer is None and not self.should_exit:
            self._timer = threading.Timer(self.drain_delay, self._close)
            self._timer.daemon = True
            self._timer.start()
            return
        if self._timer is not None:
            self._timer.cancel()
        super().handle_exit(sig, frame)

    def _close(self) -> None:
        self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown (it cancels the requests still running after the graceful
        timeout), then a moment for those to send their 503 before the loop ends."""
        self.state.draining = True  # whatever asked for the shutdown
        await super().shutdown(sockets)
        deadline = asyncio.get_running_loop().time() + CUT_OFF_WAIT
        while self.server_state.tasks and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def listen(host: str, port: int) -> socket.socket:
    """A bound socket (port 0: any free port), or ConfigError naming the flag."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ConfigError(f"cannot resolve {host!r}: {error.strerror}", option="--host") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {error.strerror}", option="--port"
        ) from None
    return sock


def run(app, sock: socket.socket, settings: ServeSettings, *, log_level: str = "info") -> None:
    """Serve ``app`` on the bound ``sock`` until a stop signal; returns after a clean shutdown."""
    _log_to_stderr(log_level)
    # The event loop (HTTP, JSON, validation) and the model's worker thread share the GIL.
    # Python hands it over every 5 ms by default, so a loop thread waiting on a busy worker
    # (pandas, in preprocessing) could stall each request for that long; 0.2 ms keeps the
    # loop responsive at the cost of more frequent switches.
    sys.setswitchinterval(SWITCH_INTERVAL)
    build(app, settings, log_level=log_level).run(sockets=[sock])


def build(
    app, settings: ServeSettings, *, log_level: str = "info", access_log: bool = True
) -> GracefulServer:
    """The server for ``app`` (made by :func:`~deepstrata.serve.app.create_app` with
    ``settings``), its connections kept by the settings' limits."""
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=access_log,
        http=functools.partial(ServeProtocol, header_timeout=settings.header_timeout),
        ws="none",
        h11_max_incomplete_event_size=settings.max_header_bytes,
        timeout_keep_alive=settings.keep_alive,
        timeout_graceful_shutdown=settings.graceful_timeout,
        server_header=False,  # no software version for a scanner to read
        proxy_headers=False,  # X-Forwarded-* are trusted only behind a proxy one configures
        lifespan="on",
    )
    hide_query_strings()  # after the Config: it configures uvicorn's loggers
    return GracefulServer(config, state=app.state.serve, drain_delay=settings.drain_delay)


def _log_to_stderr(level: str) -> None:
    logger = logging.getLogger("deepstrata.serve")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level.upper())
