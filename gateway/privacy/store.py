"""The only code touching ``privacy_erasures``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.privacy.erasure import Erasure
from gateway.privacy.tables import privacy_erasures


async def record(connection: AsyncConnection, erasure: Erasure) -> None:
    await connection.execute(
        sa.insert(privacy_erasures).values(
            member_id=erasure.member_id,
            erased_at=erasure.erased_at,
            erased_by=erasure.erased_by,
            policy=erasure.policy,
            forfeited_points=sum(erasure.forfeited.values()),
            released_holds=erasure.released_holds,
        )
    )


async def erasure_of(connection: AsyncConnection, member_id: str) -> dict[str, Any] | None:
    row = (
        await connection.execute(
            sa.select(privacy_erasures).where(privacy_erasures.c.member_id == member_id)
        )
    ).first()
    if row is None:
        return None
    at: datetime = row.erased_at
    return {
        "erasedAt": at,
        "erasedBy": row.erased_by,
        "policy": row.policy,
        "forfeitedPoints": row.forfeited_points,
        "releasedHolds": row.released_holds,
    }
