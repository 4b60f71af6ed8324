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

from gateway.kernel.errors import DomainError, ErrorCode

T = TypeVar("T")
# serialization_failure, deadlock_detected, lock_not_available (a lock taken out of the
# one order with NOWAIT, see locks.lock_members)
RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03"}
log = logging.getLogger(__name__)


class Retry(Exception):
    """Raised by work that found rows it depends on changed between reading and locking
    them (a member merged meanwhile): the transaction rolls back and the work runs again."""


class Contention(DomainError):
    """Every attempt met concurrent changes: nothing was written; the caller may retry
    (with the same idempotency key)."""

    def __init__(self) -> None:
        super().__init__(
            ErrorCode.CONTENTION,
            "Concurrent changes kept this operation from completing; nothing was changed. "
            "Retry it (with the same idempotency key).",
        )


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
            except (DBAPIError, Retry) as error:
                why = "a change" if isinstance(error, Retry) else sqlstate(error)
                if isinstance(error, DBAPIError) and why not in RETRYABLE_SQLSTATES:
                    raise
                if attempt == self.attempts:
                    log.warning("gave up after %s (attempt %d)", why, attempt)
                    raise Contention() from error
                self.retries += 1
                log.info("retrying after %s (attempt %d)", why, attempt)
                await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))
        raise AssertionError("unreachable")

    async def read(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async with self.engine.connect() as connection:
            return await work(connection)
