"""The baseline: each earn posted straight over asyncpg with the statements the gateway itself
sent for an earn (recorded by bench/trace.py, templated by bench/replay.py).

One transaction per earn, begun as the gateway's was (asyncpg's ``transaction()`` with the
isolation level SQLAlchemy's asyncpg adapter had: by default none, a plain BEGIN), then every
recorded statement in the recorded order, each with the earn's values, over asyncpg's
prepared statements (``fetch``, or ``executemany`` where the gateway used it), then COMMIT.
No SQLAlchemy, no GraphQL, no HTTP: what is left is the ledger's own work and asyncpg's.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # ships no type information

from bench.measurement import Attempt
from bench.replay import Template, Values, now
from bench.workload import Earn


async def post_earn(connection: asyncpg.Connection, template: Template, earn: Earn) -> None:
    """The template's statements for ``earn``; the caller holds the transaction."""
    values = Values(earn.member.uuid, earn.key, earn.points, now())
    answers: list[list[tuple[Any, ...]]] = []
    for step in template.steps:
        arguments = step.arguments(values, answers)
        if step.executemany:
            await connection.executemany(step.sql, arguments)
            answers.append([])
        else:
            answers.append([tuple(row) for row in await connection.fetch(step.sql, *arguments)])


def direct_attempt(connection: asyncpg.Connection, templates: dict[str, Template]) -> Attempt[Earn]:
    """Timed from BEGIN to COMMIT."""

    async def attempt(earn: Earn) -> tuple[float, str | None]:
        started = time.perf_counter()
        template = templates[earn.partner]
        async with connection.transaction(isolation=template.isolation):
            await post_earn(connection, template, earn)
        return time.perf_counter() - started, None

    return attempt
