"""``serve --rate-limit``: requests a minute per bearer token, a token bucket per client.

Each key (the bearer token a request carries, or without one the client's address) has a
bucket of ``per_minute`` requests that refills at ``per_minute`` a minute; a request finds
it empty and is answered 429 with the seconds until the next one in ``Retry-After``. A
steady client is never refused below the rate; a burst of a minute's worth passes. With
``max_records`` rows a request, the limit caps the rows a copier can query a minute
(``deepstrata steal`` shows what a number of rows buys).

>>> limit = RateLimit(2, clock=lambda: 0.0)
>>> limit.wait(b"a"), limit.wait(b"a"), limit.wait(b"a") > 0, limit.wait(b"b")
(0.0, 0.0, True, 0.0)
"""

from __future__ import annotations

import time
from collections.abc import Callable

MAX_KEYS = 10_000  # buckets kept; past it the full ones (idle a minute or more) are dropped


class RateLimit:
    def __init__(self, per_minute: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # requests a second
        self.clock = clock
        self.buckets: dict[bytes, tuple[float, float]] = {}  # key -> (requests left, when)

    def wait(self, key: bytes) -> float:
        """0.0 when a request under ``key`` may go now (it is counted); else the seconds
        until it may."""
        now = self.clock()
        left, then = self.buckets.get(key, (self.capacity, now))
        left = min(self.capacity, left + (now - then) * self.rate)
        if left >= 1.0:
            self.buckets[key] = (left - 1.0, now)
            self._forget(now)
            return 0.0
        self.buckets[key] = (left, now)
        return (1.0 - left) / self.rate

    def _forget(self, now: float) -> None:
        if len(self.buckets) > MAX_KEYS:
            full = 60.0  # a bucket idle this long has refilled
            self.buckets = {k: v for k, v in self.buckets.items() if now - v[1] < full}


def client_key(scope) -> bytes:
    """The bearer credentials of a request, else its client address."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return value.strip()
    client = scope.get("client")
    return (client[0] if client else "").encode()
