"""``GET /livez``: the process answers. ``GET /readyz``: it can serve, with the database
reachable and its schema at the head of the migrations or past it (a server started before
``coalition migrate`` ran is not; an older release's server stays ready while a newer one
migrates during a rolling update)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.kernel.database import alembic_config

log = logging.getLogger("gateway.probes")


def _current(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


class Probes:
    def __init__(
        self, engine: Callable[[Request], AsyncEngine | None], timeout: float = 2.0
    ) -> None:
        """``engine`` gives the application's engine once it has started (None before)."""
        self.engine = engine
        self.timeout = timeout
        script = ScriptDirectory.from_config(alembic_config())
        self.heads = set(script.get_heads())
        self.known = {revision.revision for revision in script.walk_revisions()}

    def routes(self) -> list[Route]:
        return [
            Route("/livez", self.live, methods=["GET"]),
            Route("/readyz", self.ready, methods=["GET"]),
        ]

    async def live(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        engine = self.engine(request)
        if engine is None:
            return self._unready("starting", "the application has not started")
        try:
            async with asyncio.timeout(self.timeout), engine.connect() as connection:
                current = await connection.run_sync(_current)
        except Exception as error:
            log.warning("readiness: database unreachable: %r", error)
            return self._unready("database_unavailable", "the database cannot be reached")
        # A revision this code does not know: a newer release migrated the database during a
        # rolling update (migrations only add), and this process still serves.
        ahead = bool(current - self.known)
        if current != self.heads and not ahead:
            return self._unready(
                "migrations_pending",
                f"the database schema is at {sorted(current) or 'nothing'}, "
                f"the code at {sorted(self.heads)}: run `coalition migrate`",
            )
        return JSONResponse({"status": "ok", "migrations": sorted(self.heads)})

    @staticmethod
    def _unready(reason: str, detail: str) -> Response:
        body = {"status": "unavailable", "reason": reason, "detail": detail}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
