"""The ASGI application: GraphQL at /graphql, health at /healthz."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from partners.config import load_coalition

from .database import create_engine, migrate
from .demo import load_demo
from .graphql.schema import build_schema
from .http import GraphQLEndpoint
from .service import LedgerService, utcnow
from .settings import Settings

log = logging.getLogger("gateway")


def _service(request: Request) -> LedgerService:
    service: LedgerService = request.app.state.service
    return service


async def health(request: Request) -> Response:
    try:
        async with _service(request).engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:
        log.exception("health check failed")
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})


async def home(request: Request) -> Response:
    return RedirectResponse("/graphql")


def create_app(
    settings: Settings | None = None, clock: Callable[[], datetime] = utcnow
) -> Starlette:
    settings = settings or Settings.from_env()
    coalition = load_coalition(settings.config_dir)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, settings.db_pool_size)
        try:
            if settings.migrate_on_start:
                await migrate(engine)
            service = LedgerService(engine, coalition, clock)
            await service.start()
            if settings.demo_data:
                await load_demo(service)
            app.state.service = service
            # What start-up built lives as long as the process: keep the collector from
            # walking it again on every full collection (tens of ms, stalling all requests).
            gc.collect()
            gc.freeze()
            yield
        finally:
            await engine.dispose()

    endpoint = GraphQLEndpoint(
        build_schema(settings.max_query_depth, settings.max_query_tokens),
        _service,
        max_body_bytes=settings.max_body_bytes,
        graphiql=settings.graphiql,
    )
    routes = [
        Route("/graphql", endpoint.handle, methods=["GET", "POST"]),
        Route("/healthz", health, methods=["GET"]),
        Route("/", home, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
