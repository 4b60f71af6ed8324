"""Tiers' side of data rights (gateway.privacy): a member's tier, for an export (a member
without a row is in the first tier). It holds no personal data, so erasure keeps it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.tiers.tables import member_tiers


async def tier_of(connection: AsyncConnection, member_id: str) -> dict[str, Any] | None:
    row = (
        await connection.execute(
            sa.select(member_tiers).where(member_tiers.c.member_id == member_id)
        )
    ).first()
    if row is None:
        return None
    return {
        "tier": row.tier,
        "since": row.since,
        "reviewAt": row.review_at,
        "downgradeAt": row.downgrade_at,
    }
