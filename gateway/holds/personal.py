"""Holds' side of data rights (gateway.privacy): a member's holds for an export, and the
release of their open holds when they are erased (each posts a RELEASE, as a void does)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.holds.service import AUTHORIZED, VOIDED
from gateway.holds.tables import holds
from gateway.ledger.posting import Kernel
from gateway.ledger.rules import TransferKind, release_legs


async def holds_of(connection: AsyncConnection, member_ids: Sequence[str]) -> list[dict[str, Any]]:
    result = await connection.execute(
        sa.select(holds).where(holds.c.member_id.in_(member_ids)).order_by(holds.c.id)
    )
    return [
        {
            "id": row.id,
            "partner": row.partner,
            "points": row.points,
            "capturedPoints": row.captured_points,
            "status": row.status,
            "reason": row.reason,
            "holdTransferId": row.hold_transfer_id,
            "settleTransferId": row.settle_transfer_id,
            "createdAt": row.created_at,
            "expiresAt": row.expires_at,
            "settledAt": row.settled_at,
        }
        for row in result
    ]


async def release_open(
    connection: AsyncConnection, kernel: Kernel, member_id: str, member_ids: Sequence[str]
) -> int:
    """Void the members' open holds, their points back in ``member_id``'s wallets (the
    caller holds the member's lock); returns how many were released."""
    result = await connection.execute(
        sa.select(holds)
        .where(holds.c.member_id.in_(member_ids), holds.c.status == AUTHORIZED)
        .order_by(holds.c.id)
        .with_for_update()
    )
    released = 0
    for hold in result.all():
        claim = kernel.claim(f"erase:{hold.partner}", f"hold:{hold.id}", {"hold": hold.id})
        values = {
            "kind": TransferKind.RELEASE.value,
            "partner": hold.partner,
            "points": hold.points,
            "reason": f"hold {hold.id} voided: member erased",
        }
        legs = release_legs(hold.partner, hold.points)
        extra = {"hold_id": hold.id, "released_points": hold.points}
        posting = await kernel.post(connection, claim, values, member_id, legs, None, extra)
        now = kernel.clock()
        await connection.execute(
            sa.update(holds)
            .where(holds.c.id == hold.id, holds.c.status == AUTHORIZED)
            .values(status=VOIDED, settle_transfer_id=posting.transfer.id, settled_at=now)
        )
        released += 1
    return released
