"""A reversal's next part (``post_part``) and the running total of each reversed transfer.

A transfer may be reversed in parts (each a REVERSAL transfer pointing at it) that add up to
it, never beyond. The running total lives on one row, so a reversal reads and raises one row
whatever the number of earlier parts. A reversal first locks the transfer it reverses
(``original``): reversals of one transfer, and racing retries of one reversal, take turns, so
each reads the total (and the idempotency key) the one before it committed. The
compare-and-set in ``add`` refuses a change that got past the lock anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.ledger import locks
from gateway.ledger import store as repository
from gateway.ledger.posting import Claim, Kernel
from gateway.ledger.records import Posting, TransferRecord
from gateway.ledger.rules import AccountCode, Leg, TransferKind, reversal_legs
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


async def post_part(
    kernel: Kernel,
    connection: AsyncConnection,
    original: TransferRecord,
    claim: Claim,
    points: int | None,
    reason: str | None,
) -> Posting:
    """Post the next part of ``original``'s reversal (``points``; None: all that is left)
    and raise its running total; the caller holds ``original``'s lock."""
    before = await reversed_so_far(connection, original.id)
    original_legs = (await repository.legs_of(connection, [original.id]))[original.id]
    legs = reversal_legs(
        original.kind,
        [Leg(leg.pool, leg.account, leg.amount) for leg in original_legs],
        original.points,
        points,
        before,
    )
    part = points if points is not None else original.points - before
    values: dict[str, Any] = {
        "kind": TransferKind.REVERSAL.value,
        "partner": original.partner,
        "to_partner": original.to_partner,
        "points": part,
        "reason": reason,
        "reverses_id": original.id,
    }
    if original.kind is TransferKind.CONVERSION:
        # What this part gives back of the target points and of the fee.
        values["received_points"] = -sum(
            leg.amount
            for leg in legs
            if leg.pool == original.to_partner and leg.account is not AccountCode.LIQUIDITY
        )
        values["fee"] = -sum(leg.amount for leg in legs if leg.account is AccountCode.FEES)
        values["rate"] = str(original.rate) if original.rate is not None else None
    owner = original.member_id
    if owner is not None:
        # A merged member's points now live with the survivor.
        owner = await locks.live_member(connection, owner)
    reverses = {
        "reverses_kind": original.kind.value,
        "reverses_at": original.created_at.isoformat(),
    }
    posting = await kernel.post(connection, claim, values, owner, legs, event_data=reverses)
    if not posting.replayed:  # a replay writes nothing more
        await add(connection, original.id, before, part, posting.transfer.id)
    return posting
