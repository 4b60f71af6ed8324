"""Challenges' side of data rights (gateway.privacy): a member's badges, for an export.
They hold no personal data, so erasure keeps them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.challenges.tables import challenge_awards


async def awards_of(connection: AsyncConnection, member_ids: Sequence[str]) -> list[dict[str, Any]]:
    result = await connection.execute(
        sa.select(challenge_awards)
        .where(challenge_awards.c.member_id.in_(member_ids))
        .order_by(challenge_awards.c.awarded_at, challenge_awards.c.id)
    )
    return [
        {
            "challenge": row.challenge,
            "badge": row.badge,
            "periodStart": row.period_start,
            "periodEnd": row.period_end,
            "count": row.count,
            "bonusPoints": row.bonus_points,
            "bonusPartner": row.bonus_partner,
            "bonusTransferId": row.bonus_transfer_id,
            "awardedAt": row.awarded_at,
        }
        for row in result
    ]
