"""Metrics of the API process (api.md 3.1): HTTP requests, idempotency, SSE, and scrape-time reads.

Counters and histograms live on prometheus-client's default registry (with those of
``common.metrics`` and ``reconcile.metrics``); :func:`render` adds gauges read from the database
at scrape time (:mod:`api.metrics_database`) and writes the text format 0.0.4.

HTTP requests are measured by :func:`instrument_http`, which wraps the app's ASGI handler, so
404s and 405s (which never reach a route) are counted too. The ``route`` label is the route
template (``/api/v1/orders/{order_id}``), or ``unmatched``; ``method`` is one of the standard
methods or ``OTHER``. Durations run from the request's arrival to its response's first byte, so a
long SSE stream counts as the time it took to open.

Names other code sets: :data:`SSE_CONNECTIONS` (``offerhub_sse_connections``: inc when a stream
opens, dec when it closes), :data:`IDEMPOTENCY_REPLAYS`, :data:`IDEMPOTENCY_CONFLICTS`.
"""

import time
from typing import Any, Final

import asyncpg
from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

import common.metrics  # noqa: F401 (registers the ledger, provider and webhook metrics)
import reconcile.metrics  # noqa: F401 (its gauges are declared even before a first run)
from api.metrics_database import database_snapshot

__all__ = [
    "HTTP_DURATION",
    "HTTP_REQUESTS",
    "IDEMPOTENCY_CONFLICTS",
    "IDEMPOTENCY_REPLAYS",
    "METRICS_MEDIA_TYPE",
    "SSE_CONNECTIONS",
    "UNMATCHED_ROUTE",
    "instrument_http",
    "render",
]

# The `_created` series of every counter and histogram would double the exposition for nothing.
disable_created_metrics()  # type: ignore[no-untyped-call]

METRICS_MEDIA_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED_ROUTE: Final = "unmatched"
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS: Final = Counter(
    "offerhub_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION: Final = Histogram(
    "offerhub_http_request_duration_seconds",
    "Time from a request's arrival to its response's first byte, by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30),
)
IDEMPOTENCY_REPLAYS: Final = Counter(
    "offerhub_idempotency_replays",
    "Mutating requests answered from a stored reply (Idempotency-Replayed: true).",
)
IDEMPOTENCY_CONFLICTS: Final = Counter(
    "offerhub_idempotency_conflicts",
    "Idempotency keys refused: reused (another request under the same key) or in_progress.",
    ["reason"],
)
SSE_CONNECTIONS: Final = Gauge(
    "offerhub_sse_connections", "Server-sent event streams open in this process."
)
# The labelled children exist from the start, so the series are exported at zero.
IDEMPOTENCY_CONFLICTS.labels("reused")
IDEMPOTENCY_CONFLICTS.labels("in_progress")


def _observe(scope: Scope, status: int, elapsed_s: float) -> None:
    method = str(scope.get("method", "")).upper()
    method = method if method in _METHODS else "OTHER"
    route = scope.get("path_template") or UNMATCHED_ROUTE
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_DURATION.labels(method, route).observe(elapsed_s)


def instrument_http(app: Litestar) -> None:
    """Count and time every HTTP request ``app`` answers (wraps its ASGI handler in place)."""
    inner: ASGIApp = app.asgi_handler

    async def measured(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await inner(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                _observe(scope, message["status"], time.perf_counter() - started)
            await send(message)

        await inner(scope, receive, timed_send)

    app.asgi_handler = measured


class _Families:
    """A one-shot collector: the families read from the database for this scrape."""

    def __init__(self, families: list[Any]) -> None:
        self._families = families

    def collect(self) -> list[Any]:
        """The families, as prometheus-client's registry asks for them."""
        return self._families


async def render(pool: asyncpg.Pool, timeout_s: float) -> bytes:
    """The exposition: the default registry, then the gauges read from the database now."""
    # A registry per scrape: the database families are this scrape's readings only.
    scraped = CollectorRegistry(auto_describe=False)
    scraped.register(_Families(await database_snapshot(pool, timeout_s)))
    return generate_latest(REGISTRY) + generate_latest(scraped)
