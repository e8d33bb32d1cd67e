"""The HTTP connection under the application: uvicorn's h11 protocol, with its edges kept.

What uvicorn does by itself, and what changes here:

- a request h11 cannot parse (malformed, or a request line and headers longer than
  ``max_header_bytes`` arriving in pieces) was answered by uvicorn in plain text; here
  it gets the JSON error shape every other answer has: 400 ``bad_request``, or 431
  ``headers_too_large`` (a head that arrives whole in one read is measured by the guard,
  :mod:`deepstrata.serve.guard`);
- uvicorn's only timer is keep-alive, armed once a response is complete: a connection
  that never sends a request, or sends its head a byte at a time, was held forever.
  Here a connection has ``header_timeout`` seconds, from its opening or from the first
  byte of its next request, to deliver the whole request line and headers (bytes
  trickling in do not extend it); then it is closed, answered 408 if it had sent part
  of a head;
- a response complete while the request's body is still coming (an early 413, a 504,
  a probe that reads no body) left uvicorn reading the rest for as long as the client
  trickled it. It is still read (closing at once could reset the connection before the
  client has read its answer), for ``header_timeout`` seconds at most.

And the access log without query strings (:class:`WithoutQuery`): a token or a personal
value put in a URL does not land in the log.
"""

from __future__ import annotations

import asyncio
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from deepstrata.serve.errors import raw_error

ACCESS_LOGGER = "uvicorn.access"


class ServeProtocol(H11Protocol):
    """uvicorn's ``H11Protocol`` with JSON errors and a deadline per request head.
    ``uvicorn.Config(http=functools.partial(ServeProtocol, header_timeout=...))``."""

    def __init__(self, *args, header_timeout: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        self._lingering = None  # the request cycle whose body is read after its answer

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._await_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        state = self.conn.their_state
        if state is not h11.SEND_BODY or self.cycle is not self._lingering:
            self._cancel("_linger_timer")  # the body an answer went out before is all in
        if state is h11.IDLE:  # (part of) a head: the deadline set at its first byte stands
            self._await_head()
        else:
            self._cancel("_head_timer")

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel("_head_timer")
        self._cancel("_linger_timer")
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        still_sending = self.conn.their_state is h11.SEND_BODY
        if still_sending and not self.transport.is_closing() and self._linger_timer is None:
            self._lingering = self.cycle
            self._linger_timer = self.loop.call_later(self.header_timeout, self._close)

    def send_400_response(self, msg: str) -> None:
        """h11 refused what the client sent: its head was too long, or not HTTP."""
        limit = self.config.h11_max_incomplete_event_size
        if limit is not None and len(self.conn.trailing_data[0]) > limit:
            message = f"the request line and headers are longer than {limit} bytes"
            self._answer(431, "headers_too_large", message)
        else:
            self._answer(400, "bad_request", "the request is not valid HTTP/1.1")

    # -- timers --------------------------------------------------------------------------------
    def _await_head(self) -> None:
        if self._head_timer is None and not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.conn.trailing_data[0]:  # part of a head: say why the connection goes
            message = f"the request line and headers took longer than {self.header_timeout:g} s"
            self._answer(408, "request_timeout", message)
        else:  # idle: nothing was asked, nothing to answer
            self._close()

    def _cancel(self, name: str) -> None:
        timer = getattr(self, name)
        if timer is not None:
            timer.cancel()
            setattr(self, name, None)

    def _answer(self, status: int, code: str, message: str) -> None:
        if not self.transport.is_closing():
            self.transport.write(raw_error(status, code, message))
        self._close()

    def _close(self) -> None:
        self._cancel("_linger_timer")
        if not self.transport.is_closing():
            self.transport.close()


class WithoutQuery(logging.Filter):
    """uvicorn's access records (``'%s - "%s %s HTTP/%s" %d'``) with the path's query
    string cut off: ``GET /predict?token=... -> GET /predict``."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].partition("?")[0], *args[3:])
        return True


def hide_query_strings() -> None:
    """Add :class:`WithoutQuery` to uvicorn's access logger (once per process)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(each, WithoutQuery) for each in logger.filters):
        logger.addFilter(WithoutQuery())
