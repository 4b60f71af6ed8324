"""The gateway's Prometheus metrics, and ``GET /metrics``.

Request metrics are recorded by the middleware (``middleware``); the database pool and
the event consumers' lag are read when Prometheus scrapes. Jobs and remote partner calls
record their own (``gateway.jobs.metrics``, ``gateway.remote.metrics``). Every label takes
bounded values: route templates, operation names past a cap are ``other``, codes from
our own enumerations, configured partners.

Access (``COALITION_METRICS``): ``open`` serves anyone; ``token`` asks for
``Authorization: Bearer <COALITION_METRICS_TOKEN>`` (401 otherwise); ``off`` answers 404.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from collections.abc import Callable, Sequence
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from gateway.api.observability import requests
from gateway.api.observability.requests import RequestRecord
from gateway.events.followers import backlog
from gateway.kernel.unit_of_work import UnitOfWork

log = logging.getLogger("gateway.metrics")

disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series

MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

GRAPHQL_REQUESTS = Counter(
    "coalition_graphql_requests",
    "GraphQL requests by operation name and outcome (ok, user_error, error, rejected).",
    ["operation", "outcome"],
)
GRAPHQL_LATENCY = Histogram(
    "coalition_graphql_request_duration_seconds",
    "Time to answer a GraphQL request, by operation name.",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
HTTP_REQUESTS = Counter(
    "coalition_http_requests",
    "HTTP requests by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "coalition_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
USER_ERRORS = Counter(
    "coalition_user_errors",
    "userErrors returned in mutation payloads, by code.",
    ["code"],
)
GRAPHQL_ERRORS = Counter(
    "coalition_graphql_errors",
    "Entries of a GraphQL response's errors list, by extensions.code.",
    ["code"],
)
# With several worker processes (PROMETHEUS_MULTIPROC_DIR) the pool gauges are per process
# (a ``pid`` label), the lag gauges the latest any process read.
POOL_CONNECTIONS = Gauge(
    "coalition_db_pool_connections",
    "Database pool connections: in_use (checked out), idle (in the pool), size (configured).",
    ["state"],
    multiprocess_mode="liveall",
)
POOL_WAITING = Gauge(
    "coalition_db_pool_waiting",
    "Requests waiting for a database connection from the pool.",
    multiprocess_mode="liveall",
)
CONSUMER_LAG_EVENTS = Gauge(
    "coalition_consumer_lag_events",
    "Events appended to the outbox after an event consumer's position (approximate).",
    ["consumer"],
    multiprocess_mode="mostrecent",
)
CONSUMER_LAG_SECONDS = Gauge(
    "coalition_consumer_lag_seconds",
    "Age of the oldest event a consumer has not applied yet (0 when up to date).",
    ["consumer"],
    multiprocess_mode="mostrecent",
)


def record_request(
    record: RequestRecord, route: str, method: str, status: int, seconds: float
) -> None:
    method = method if method in METHODS else "OTHER"
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_LATENCY.labels(route).observe(seconds)
    if record.graphql:
        outcome = record.outcome or ("error" if status >= 500 else "rejected")
        GRAPHQL_REQUESTS.labels(record.operation, outcome).inc()
        GRAPHQL_LATENCY.labels(record.operation).observe(seconds)


def record_user_error(code: str) -> None:
    """A userError in a mutation payload (counted once per payload entry)."""
    USER_ERRORS.labels(code).inc()
    record = requests.current()
    if record is not None:
        record.user_errors[code] = record.user_errors.get(code, 0) + 1


def record_graphql_errors(codes: Sequence[str]) -> None:
    for code in codes:
        GRAPHQL_ERRORS.labels(code).inc()


def read_pool(engine: AsyncEngine) -> None:
    pool = engine.sync_engine.pool
    checked_out = getattr(pool, "checkedout", None)
    if checked_out is None:  # a pool without counts (SQLite's may not keep any)
        return
    POOL_CONNECTIONS.labels("in_use").set(checked_out())
    POOL_CONNECTIONS.labels("idle").set(pool.checkedin())  # type: ignore[attr-defined]
    POOL_CONNECTIONS.labels("size").set(pool.size())  # type: ignore[attr-defined]
    # SQLAlchemy keeps no count of waiters: the asyncio queue behind the pool does.
    queue = getattr(getattr(pool, "_pool", None), "_queue", None)
    getters = getattr(queue, "_getters", None)
    if getters is not None:
        POOL_WAITING.set(sum(1 for waiter in getters if not waiter.done()))


async def read_lag(uow: UnitOfWork, consumers: Sequence[str], now: datetime) -> None:
    async def read(connection: AsyncConnection) -> None:
        for name in consumers:
            behind, oldest = await backlog(connection, name)
            CONSUMER_LAG_EVENTS.labels(name).set(behind)
            age = (now - oldest).total_seconds() if oldest is not None else 0.0
            CONSUMER_LAG_SECONDS.labels(name).set(max(age, 0.0))

    await uow.read(read)


def _registry() -> CollectorRegistry:
    """This process's metrics; with several workers (``coalition serve --workers N`` sets
    PROMETHEUS_MULTIPROC_DIR) all workers' together, whichever worker is scraped."""
    if not os.environ.get(MULTIPROCESS):
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


class MetricsEndpoint:
    """``GET /metrics``; ``state`` gives the engine, unit of work, consumers and clock once
    the application has started (None before)."""

    def __init__(
        self,
        access: str,
        token: str,
        state: Callable[[Request], tuple[UnitOfWork, Sequence[str], Callable[[], datetime]] | None],
        scrape_timeout: float = 2.0,
    ) -> None:
        self.access = access
        self.token = token
        self.state = state
        self.scrape_timeout = scrape_timeout

    async def handle(self, request: Request) -> Response:
        if self.access == "off":
            return PlainTextResponse("Not Found", status_code=404)  # as for any unknown path
        if self.access == "token" and not self._authorised(request):
            return JSONResponse(
                {"detail": "Send Authorization: Bearer <COALITION_METRICS_TOKEN>."},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        state = self.state(request)
        if state is not None:
            uow, consumers, clock = state
            read_pool(uow.engine)
            try:
                async with asyncio.timeout(self.scrape_timeout):
                    await read_lag(uow, consumers, clock())
            except Exception as error:  # the rest of the metrics are still worth serving
                log.warning("consumer lag not read: %r", error)
        return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)

    def _authorised(self, request: Request) -> bool:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode(), self.token.encode())
