"""Reading and writing the analytics tables (``tables.py``); nothing else touches them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.analytics.rules import FIGURES, FLOWS, Batch
from gateway.analytics.tables import (
    analytics_active,
    analytics_daily,
    analytics_flows,
    analytics_progress,
)
from gateway.kernel.schema import insert_for

PROGRESS = "daily"


async def add(connection: AsyncConnection, batch: Batch) -> None:
    """Add a batch's figures to the aggregates (in the consumer's transaction)."""
    if batch.daily:
        rows = [{"day": d, "partner": p, **row} for (d, p), row in sorted(batch.daily.items())]
        await _increment(connection, analytics_daily, rows, ["day", "partner"], FIGURES)
    if batch.flows:
        rows = [
            {"day": d, "from_partner": s, "to_partner": t, **row}
            for (d, s, t), row in sorted(batch.flows.items())
        ]
        keys = ["day", "from_partner", "to_partner"]
        await _increment(connection, analytics_flows, rows, keys, FLOWS)
    if batch.active:
        rows = [{"day": d, "partner": p, "member_id": m} for d, p, m in sorted(batch.active)]
        statement = insert_for(connection, analytics_active).values(rows)
        await connection.execute(statement.on_conflict_do_nothing())
    if batch.latest is not None:
        statement = insert_for(connection, analytics_progress).values(
            name=PROGRESS, as_of=batch.latest
        )
        newest = sa.case(
            (analytics_progress.c.as_of > statement.excluded.as_of, analytics_progress.c.as_of),
            else_=statement.excluded.as_of,
        )
        await connection.execute(
            statement.on_conflict_do_update(index_elements=["name"], set_={"as_of": newest})
        )


async def _increment(
    connection: AsyncConnection,
    table: sa.Table,
    rows: list[dict[str, object]],
    keys: list[str],
    columns: Sequence[str],
) -> None:
    statement = insert_for(connection, table).values(rows)
    set_ = {name: table.c[name] + statement.excluded[name] for name in columns}
    await connection.execute(statement.on_conflict_do_update(index_elements=keys, set_=set_))


async def as_of(connection: AsyncConnection) -> datetime | None:
    """When the last event applied occurred (None: none applied yet)."""
    found: datetime | None = await connection.scalar(
        sa.select(analytics_progress.c.as_of).where(analytics_progress.c.name == PROGRESS)
    )
    return found


def _partners(
    column: sa.ColumnElement[str], partners: Sequence[str] | None
) -> list[sa.ColumnElement[bool]]:
    return [] if partners is None else [column.in_(list(partners))]


async def daily(
    connection: AsyncConnection, partners: Sequence[str] | None, first: date, last: date
) -> dict[tuple[date, str], dict[str, int]]:
    """The figures of each day and partner in [first, last] that has any."""
    table = analytics_daily
    result = await connection.execute(
        sa.select(table).where(
            table.c.day >= first, table.c.day <= last, *_partners(table.c.partner, partners)
        )
    )
    return {
        (row.day, row.partner): {name: int(row._mapping[name]) for name in FIGURES}
        for row in result
    }


async def totals_before(
    connection: AsyncConnection, partners: Sequence[str] | None, first: date
) -> dict[str, dict[str, int]]:
    """Each partner's figures summed over the days before ``first`` (from the aggregates:
    one row per day and partner, never the ledger)."""
    table = analytics_daily
    sums = [sa.func.coalesce(sa.func.sum(table.c[name]), 0).label(name) for name in FIGURES]
    result = await connection.execute(
        sa.select(table.c.partner, *sums)
        .where(table.c.day < first, *_partners(table.c.partner, partners))
        .group_by(table.c.partner)
    )
    return {row.partner: {name: int(row._mapping[name]) for name in FIGURES} for row in result}


async def active_members(
    connection: AsyncConnection,
    partners: Sequence[str] | None,
    periods: Sequence[tuple[date, date]],
) -> list[int]:
    """Distinct members active in each period (start, end inclusive), at ``partners``."""
    if not periods:
        return []
    table = analytics_active
    where = [
        table.c.day >= periods[0][0],
        table.c.day <= periods[-1][1],
        *_partners(table.c.partner, partners),
    ]
    if all(start == end for start, end in periods):
        bucket: sa.ColumnElement[object] = table.c.day
        keys: list[object] = [start for start, _ in periods]
    else:
        bucket = sa.case(*[(table.c.day <= end, index) for index, (_, end) in enumerate(periods)])
        keys = list(range(len(periods)))
    result = await connection.execute(
        sa.select(bucket.label("bucket"), sa.func.count(sa.distinct(table.c.member_id)))
        .where(*where)
        .group_by(bucket)
    )
    counts = {row[0]: int(row[1]) for row in result}
    return [counts.get(key, 0) for key in keys]


async def flows(
    connection: AsyncConnection, partner: str | None, first: date, last: date
) -> list[tuple[str, str, dict[str, int]]]:
    """Flows between partners in [first, last] per (from, to); ``partner``: those it is in."""
    table = analytics_flows
    where = [table.c.day >= first, table.c.day <= last]
    if partner is not None:
        where.append(sa.or_(table.c.from_partner == partner, table.c.to_partner == partner))
    sums = [sa.func.sum(table.c[name]).label(name) for name in FLOWS]
    result = await connection.execute(
        sa.select(table.c.from_partner, table.c.to_partner, *sums)
        .where(*where)
        .group_by(table.c.from_partner, table.c.to_partner)
        .order_by(table.c.from_partner, table.c.to_partner)
    )
    return [
        (row.from_partner, row.to_partner, {name: int(row._mapping[name]) for name in FLOWS})
        for row in result
    ]
