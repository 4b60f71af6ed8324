"""How much of each transfer its reversals took back so far: one row per reversed transfer.

A transfer may be reversed in parts (each a REVERSAL transfer pointing at it) that add up to
it, never beyond. The running total lives on one row, so a reversal reads and raises one row
whatever the number of earlier parts. A reversal first locks the transfer it reverses
(``original``): reversals of one transfer, and racing retries of one reversal, take turns, so
each reads the total (and the idempotency key) the one before it committed. The
compare-and-set in ``add`` refuses a change that got past the lock anyway.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.ledger.records import TransferRecord
from gateway.ledger.tables import reversed_totals, transfers


class ReversedConcurrently(Exception):
    """The running total changed after it was read: the transaction must roll back."""


async def original(connection: AsyncConnection, transfer_id: int) -> TransferRecord | None:
    """The transfer to reverse, locked until the transaction ends (FOR NO KEY UPDATE: rows
    that reference it can still be inserted; SQLite has one writer at a time anyway)."""
    row = (
        await connection.execute(
            sa.select(transfers)
            .where(transfers.c.id == transfer_id)
            .with_for_update(key_share=True)
        )
    ).first()
    return TransferRecord.from_row(row) if row else None


async def reversed_so_far(connection: AsyncConnection, transfer_id: int) -> int:
    found = await connection.scalar(
        sa.select(reversed_totals.c.points).where(reversed_totals.c.transfer_id == transfer_id)
    )
    return int(found or 0)


async def add(
    connection: AsyncConnection, transfer_id: int, before: int, points: int, reversal_id: int
) -> None:
    """Raise the running total of ``transfer_id`` from ``before`` by ``points``."""
    if before == 0:
        await connection.execute(
            sa.insert(reversed_totals).values(
                transfer_id=transfer_id, points=points, last_reversal_id=reversal_id
            )
        )
        return
    result = await connection.execute(
        sa.update(reversed_totals)
        .where(reversed_totals.c.transfer_id == transfer_id, reversed_totals.c.points == before)
        .values(points=before + points, last_reversal_id=reversal_id)
    )
    if result.rowcount != 1:
        raise ReversedConcurrently(transfer_id)


async def latest(connection: AsyncConnection, transfer_ids: Sequence[int]) -> dict[int, int]:
    """The latest reversal of each of ``transfer_ids`` that has any."""
    result = await connection.execute(
        sa.select(reversed_totals.c.transfer_id, reversed_totals.c.last_reversal_id).where(
            reversed_totals.c.transfer_id.in_(transfer_ids)
        )
    )
    return {row.transfer_id: row.last_reversal_id for row in result}
