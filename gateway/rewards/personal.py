"""Rewards' side of data rights (gateway.privacy): a member's redemptions, for an export.
They hold no personal data, so erasure keeps them (settlement's obligations point at them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.rewards.tables import reward_redemptions, rewards


async def redemptions_of(
    connection: AsyncConnection, member_ids: Sequence[str]
) -> list[dict[str, Any]]:
    result = await connection.execute(
        sa.select(reward_redemptions, rewards.c.name.label("reward_name"))
        .join(rewards, rewards.c.id == reward_redemptions.c.reward_id)
        .where(reward_redemptions.c.member_id.in_(member_ids))
        .order_by(reward_redemptions.c.id)
    )
    return [
        {
            "id": row.id,
            "rewardId": row.reward_id,
            "reward": row.reward_name,
            "partner": row.partner,
            "paidWith": row.paid_with,
            "pricePoints": row.price_points,
            "paidPoints": row.paid_points,
            "value": row.value,
            "giftCode": row.gift_code,
            "charity": row.charity,
            "redeemTransferId": row.redeem_transfer_id,
            "conversionTransferId": row.conversion_transfer_id,
            "at": row.created_at,
        }
        for row in result
    ]
