"""Prometheus metrics of one server, in a registry of its own (two apps in one process,
as in the tests, do not share counters).

``deepstrata_http_requests_total{endpoint, method, status}``, the latency histogram
``deepstrata_http_request_duration_seconds{endpoint}``, requests in progress, and the
micro-batches' sizes. ``endpoint`` is one of the server's paths, or ``other`` for any
path it does not serve, so that scanning random URLs cannot grow the label set.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

ENDPOINTS = (
    "/predict", "/schema", "/livez", "/readyz", "/metrics", "/openapi.json", "/drift",
)  # fmt: skip
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


def endpoint_of(path: str) -> str:
    return path if path in ENDPOINTS else "other"


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "deepstrata_http_requests",
            "HTTP requests answered, by endpoint, method and status code.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "deepstrata_http_request_duration_seconds",
            "Seconds from a request's arrival to the end of its answer.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_progress = Gauge(
            "deepstrata_http_requests_in_progress",
            "Requests being answered (health probes and /metrics excepted).",
            registry=self.registry,
        )
        self.batch_requests = Histogram(
            "deepstrata_batch_requests",
            "Requests gathered into one forward pass.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "deepstrata_batch_rows",
            "Rows in one forward pass.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )

    def observe(self, path: str, method: str, status: int, seconds: float) -> None:
        endpoint = endpoint_of(path)
        method = method if method in {"GET", "POST", "HEAD", "OPTIONS"} else "other"
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def batch(self, requests: int, rows: int) -> None:
        self.batch_requests.observe(requests)
        self.batch_rows.observe(rows)

    def text(self) -> bytes:
        return generate_latest(self.registry)
