"""Rows per table, to check that two ways of posting the same batch wrote the same rows."""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]  # ships no type information

TABLES = """
SELECT table_name FROM information_schema.tables
WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> 'alembic_version'
ORDER BY table_name
"""
POINTS = "transfers.points"  # not a table: the points of every transfer, summed


async def count_rows(connection: asyncpg.Connection) -> dict[str, int]:
    """Every table's row count (and the transfers' points, under ``POINTS``)."""
    names = [row["table_name"] for row in await connection.fetch(TABLES)]
    parts = [f'(SELECT count(*) FROM "{name}") AS "{name}"' for name in names]
    parts.append(f'(SELECT COALESCE(SUM(points), 0) FROM transfers) AS "{POINTS}"')
    row = await connection.fetchrow("SELECT " + ", ".join(parts))
    return {name: int(row[name]) for name in [*names, POINTS]}


def differences(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """What changed between two counts, table by table (tables that did not change left out)."""
    changed = {name: after.get(name, 0) - before.get(name, 0) for name in set(before) | set(after)}
    return {name: change for name, change in sorted(changed.items()) if change}
