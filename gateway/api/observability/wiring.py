"""The observability pieces as the application wires them: logging, the middleware (request
ids, metrics, the request log, CORS) and the routes (/livez, /readyz, /metrics)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Route

from gateway.api import jobs
from gateway.api.cors import cors
from gateway.api.observability.logs import configure_logging
from gateway.api.observability.metrics import MetricsEndpoint
from gateway.api.observability.middleware import ObserveRequests
from gateway.api.observability.probes import Probes
from gateway.api.settings import Settings
from gateway.kernel.unit_of_work import UnitOfWork
from gateway.ledger.service import LedgerService


def configure(settings: Settings) -> None:
    # A worker of `coalition serve --workers N` logs at the level serve was given.
    configure_logging(settings.log_format, os.environ.get("COALITION_LOG_LEVEL"))


def middleware(settings: Settings) -> list[Middleware]:
    """Outermost first: every response (a refused preflight too) carries its request id."""
    return [
        Middleware(ObserveRequests, request_log=settings.request_log),
        cors(settings.cors_origins),
    ]


def _service(request: Request) -> LedgerService | None:
    service: LedgerService | None = getattr(request.app.state, "service", None)
    return service


def _engine(request: Request) -> AsyncEngine | None:
    service = _service(request)
    return service.engine if service is not None else None


def routes(settings: Settings) -> list[Route]:
    names: list[str] = []

    def scraped(
        request: Request,
    ) -> tuple[UnitOfWork, Sequence[str], Callable[[], datetime]] | None:
        service = _service(request)
        if service is None:
            return None
        if not names:
            names.extend(consumer.name for consumer in jobs.consumers(service))
        return service.uow, names, service.clock

    endpoint = MetricsEndpoint(settings.metrics, settings.metrics_token, scraped)
    return [
        *Probes(_engine).routes(),
        Route("/metrics", endpoint.handle, methods=["GET"]),
    ]
