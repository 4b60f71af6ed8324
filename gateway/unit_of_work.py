"""One transaction around each operation, retried on deadlock or serialization failure."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

T = TypeVar("T")
RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
log = logging.getLogger(__name__)


def sqlstate(error: DBAPIError) -> str | None:
    for candidate in (error.orig, getattr(error.orig, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


class UnitOfWork:
    """Runs ``work`` in one transaction: all of it is committed, or none of it.

    SQLite allows one writer at a time; the embedded gateway queues its writers here
    rather than letting them fail with 'database is locked'.
    """

    def __init__(self, engine: AsyncEngine, attempts: int = 6) -> None:
        self.engine = engine
        self.attempts = attempts
        self._sqlite = engine.dialect.name == "sqlite"
        self._write_lock = asyncio.Lock()
        self.retries = 0

    @contextlib.asynccontextmanager
    async def _writer(self) -> AsyncIterator[None]:
        if self._sqlite:
            async with self._write_lock:
                yield
        else:
            yield

    async def write(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                async with self._writer(), self.engine.begin() as connection:
                    return await work(connection)
            except DBAPIError as error:
                if sqlstate(error) not in RETRYABLE_SQLSTATES or attempt == self.attempts:
                    raise
                self.retries += 1
                log.info("retrying after %s (attempt %d)", sqlstate(error), attempt)
                await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))
        raise AssertionError("unreachable")

    async def read(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async with self.engine.connect() as connection:
            return await work(connection)
