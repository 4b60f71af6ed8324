"""Running a consumer: one batch per transaction, with the advance of its position.

``follow`` takes the consumer's lock, reads its position, the next batch after it, calls
``apply`` and stores the new position, all in one transaction. A crash or an error anywhere
rolls all of it back: the position stays, and the batch is applied again later. Delivery
is at least once; effects ``apply`` writes in the transaction happen exactly once.

The lock is PostgreSQL's ``pg_try_advisory_xact_lock`` on the consumer's name, not a row
lock: a runner that finds it taken skips the consumer (another runner is at it). Unlike
``SELECT ... FOR UPDATE``, it gives the transaction no transaction id, so a runner reading
the log does not hold back the log's horizon for everyone else (see ``log``). The position
is read after the lock is held, in a statement of its own, so that it is the one the last
holder committed. SQLite allows one writer: the unit of work's writer lock suffices there.
"""

from __future__ import annotations

import zlib
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.events import log
from gateway.events.event import START, Consumer, Position, batch_size
from gateway.events.tables import consumer_positions, outbox
from gateway.kernel.unit_of_work import UnitOfWork

DEFAULT_BATCH = 100  # events per batch of a consumer that declares no ``batch_size``
CONSUMER_LOCKS = 727275  # the advisory-lock class of consumers (the objid: the name's CRC)


def lock_key(name: str) -> int:
    """A stable signed 32-bit key for ``name``."""
    return zlib.crc32(name.encode()) - 2**31


async def try_lock(connection: AsyncConnection, family: int, name: str) -> bool:
    """On PostgreSQL, ``name``'s lock in ``family`` until the transaction ends; False when
    another session holds it. Always True on SQLite."""
    if connection.dialect.name != "postgresql":
        return True
    taken = await connection.scalar(
        sa.select(sa.func.pg_try_advisory_xact_lock(family, lock_key(name)))
    )
    return bool(taken)


async def position(connection: AsyncConnection, name: str) -> Position:
    """Where ``name`` stands (the start of the log for a consumer never run)."""
    row = (
        await connection.execute(
            sa.select(consumer_positions.c.transaction_id, consumer_positions.c.sequence).where(
                consumer_positions.c.name == name
            )
        )
    ).first()
    return START if row is None else Position(int(row.transaction_id), int(row.sequence))


async def store(connection: AsyncConnection, name: str, at: Position) -> None:
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = insert(consumer_positions).values(
        name=name, transaction_id=at.transaction, sequence=at.sequence
    )
    statement = statement.on_conflict_do_update(
        index_elements=["name"],
        set_={"transaction_id": at.transaction, "sequence": at.sequence},
    )
    await connection.execute(statement)


async def follow(uow: UnitOfWork, consumer: Consumer, limit: int | None = None) -> int | None:
    """Apply the next batch of at most ``limit`` events (by default the consumer's
    ``batch_size``, else ``DEFAULT_BATCH``) to ``consumer``: how many it got (0: it is up
    to date), or None when another runner holds the consumer."""
    most = batch_size(consumer, DEFAULT_BATCH) if limit is None else limit

    async def work(connection: AsyncConnection) -> int | None:
        if not await try_lock(connection, CONSUMER_LOCKS, consumer.name):
            return None
        after = await position(connection, consumer.name)
        batch = await log.read(connection, after, most)
        if not batch:
            return 0
        await consumer.apply(connection, batch)
        await store(connection, consumer.name, batch[-1].position)
        return len(batch)

    return await uow.write(work)


async def backlog(connection: AsyncConnection, name: str) -> tuple[int, datetime | None]:
    """How far ``name`` is behind, cheaply (for metrics): the events appended after its
    position (from the ids, approximate on PostgreSQL, where positions go by transaction)
    and when the oldest event it can read next occurred (None: none is waiting)."""
    at = await position(connection, name)
    newest = await connection.scalar(sa.select(sa.func.max(outbox.c.id)))
    waiting = await log.read(connection, at, 1)
    behind = max(int(newest or 0) - at.sequence, 0)
    return behind, waiting[0].occurred_at if waiting else None
