"""Reading the event log in order, without skipping an event that commits late.

The trap: ids come from a sequence, which hands them out at insert time, not at commit. A
transaction that took id 7 may commit after one that took id 8; a reader that saw 8 and
remembers "after 8" would never see 7. Making ids gap-free with a counter row would put
one hot row in every posting and serialise them all.

The technique (PostgreSQL): each event row carries the id of the transaction that
appended it (``pg_current_xact_id()``, the column's default). A reader takes only rows whose
transaction id is below ``pg_snapshot_xmin(pg_current_snapshot())``: the oldest transaction
still running. Every transaction below it has ended, committed or rolled back, so no row
with a smaller transaction id can ever appear. Rows are read in (transaction id, id) order
and a consumer resumes after the last (transaction id, id) it applied: later rows can only
come from transactions at or above the horizon, which sort after everything read.

The price: an event becomes readable once every transaction that started before its own
has ended, so a long-running transaction (one that wrote something, and so holds a
transaction id) delays every consumer by its duration. It delays; it never loses or
reorders. Readers and the job runner's locks write nothing, so they hold no transaction id.

SQLite has one writer at a time and a transaction's rows become visible at its commit, in
id order, so readers order by id (``transaction_id`` is 0 there).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.events.event import Event, Position
from gateway.events.tables import SNAPSHOT_XMIN_SQL, outbox

_COLUMNS = (
    outbox.c.id,
    outbox.c.transaction_id,
    outbox.c.type,
    outbox.c.member_id,
    outbox.c.partner,
    outbox.c.transfer_id,
    outbox.c.points,
    outbox.c.occurred_at,
    outbox.c.actor,
    outbox.c.data,
    outbox.c.request_id,
    outbox.c.client_id,
)
_POSTGRES = (
    sa.select(*_COLUMNS)
    .where(
        sa.tuple_(outbox.c.transaction_id, outbox.c.id)
        > sa.tuple_(sa.bindparam("transaction_id"), sa.bindparam("sequence")),
        outbox.c.transaction_id < sa.literal_column(SNAPSHOT_XMIN_SQL),
    )
    .order_by(outbox.c.transaction_id, outbox.c.id)
    .limit(sa.bindparam("limit"))
)
_SQLITE = (
    sa.select(*_COLUMNS)
    .where(outbox.c.id > sa.bindparam("sequence"))
    .order_by(outbox.c.id)
    .limit(sa.bindparam("limit"))
)
_LATEST = (
    sa.select(outbox.c.transaction_id, outbox.c.id)
    .order_by(outbox.c.transaction_id.desc(), outbox.c.id.desc())
    .limit(1)
)


async def read(connection: AsyncConnection, after: Position, limit: int = 100) -> list[Event]:
    """Up to ``limit`` events after ``after``, in position order; only events that no
    earlier-positioned event can still join (see the module's doc)."""
    statement = _POSTGRES if connection.dialect.name == "postgresql" else _SQLITE
    params = {"transaction_id": after.transaction, "sequence": after.sequence, "limit": limit}
    result = await connection.execute(statement, params)
    return [_event(row) for row in result]


async def latest(connection: AsyncConnection) -> Position | None:
    """The position of the last event committed (readable or not yet), if any."""
    row = (await connection.execute(_LATEST)).first()
    return None if row is None else Position(int(row.transaction_id), int(row.id))


def _event(row: Any) -> Event:
    return Event(
        position=Position(int(row.transaction_id), int(row.id)),
        type=row.type,
        member_id=row.member_id,
        partner=row.partner,
        transfer_id=row.transfer_id,
        points=row.points,
        occurred_at=row.occurred_at,
        actor=row.actor,
        data=row.data,
        request_id=row.request_id,
        client_id=row.client_id,
    )


async def by_ids(connection: AsyncConnection, ids: list[int]) -> dict[int, Event]:
    """The events of these outbox ids that are still there (an erasure may remove some)."""
    if not ids:
        return {}
    result = await connection.execute(sa.select(*_COLUMNS).where(outbox.c.id.in_(ids)))
    return {int(row.id): _event(row) for row in result}
