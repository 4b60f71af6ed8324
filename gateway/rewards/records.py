"""Rewards and receipts as records, and the one rule of who may redeem a reward now."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.kernel.errors import DomainError, ErrorCode
from gateway.rewards.tables import reward_claims
from gateway.tiers.reward_rules import RewardTiers, tier_refusal
from gateway.tiers.service import TierStatus
from partners.config.tiers import Tiers


def reward_error(code: ErrorCode, message: str, *fields: str) -> DomainError:
    return DomainError(code, message, fields or ("reward_id",))


class RewardKind(Enum):
    DISCOUNT = "discount"
    FREE_PRODUCT = "free_product"
    GIFT_CARD = "gift_card"  # a code is issued on redemption
    EXPERIENCE = "experience"  # usually with limited stock
    DONATION = "donation"  # the donation to the named charity is recorded
    TIER_UPGRADE = "tier_upgrade"  # its tier (or the next one up) for a window: see tiers.py


@dataclass(frozen=True)
class RewardRecord:
    id: int
    partner: str
    kind: RewardKind
    name: str
    description: str | None
    price_points: int
    value: Decimal
    charity: str | None
    valid_from: datetime
    valid_until: datetime | None
    stock: int | None
    per_member_limit: int | None
    active: bool
    tier: str | None = None  # a tier upgrade's tier (a slug); None: the next tier up
    min_tier: str | None = None  # only members of this tier or above may redeem it

    @classmethod
    def from_row(cls, row: Any) -> RewardRecord:
        return cls(
            row.id,
            row.partner,
            RewardKind(row.kind),
            row.name,
            row.description,
            row.price_points,
            Decimal(row.value),
            row.charity,
            row.valid_from,
            row.valid_until,
            row.stock,
            row.per_member_limit,
            row.active,
            row.tier,
            row.min_tier,
        )

    def available_at(self, moment: datetime) -> bool:
        if not self.active or moment < self.valid_from:
            return False
        if self.valid_until is not None and moment >= self.valid_until:
            return False
        return self.stock is None or self.stock > 0

    @property
    def tier_settings(self) -> RewardTiers:
        return RewardTiers(self.kind.value, self.tier, self.min_tier)


def refusal(
    reward: RewardRecord,
    moment: datetime,
    tiers: Tiers | None,
    status: TierStatus | None,
    claimed: int,
) -> DomainError | None:
    """Why a member cannot redeem ``reward`` at ``moment`` (None: they can, funds aside):
    withdrawn, outside its validity or out of stock; their tier (``status``, needed when
    ``needs_tier``); or its limit per member, of which they used ``claimed``. The one rule
    for redeeming and for what a member is offered."""
    if not reward.available_at(moment):
        if reward.stock == 0:
            return reward_error(ErrorCode.OUT_OF_STOCK, "This reward is out of stock.")
        return reward_error(ErrorCode.REWARD_UNAVAILABLE, "This reward is not available now.")
    refused = tier_refusal(tiers, status, reward.tier_settings)
    if refused is not None:
        return refused
    if reward.per_member_limit is not None and claimed >= reward.per_member_limit:
        return limit_reached(reward)
    return None


def limit_reached(reward: RewardRecord) -> DomainError:
    return reward_error(
        ErrorCode.REWARD_LIMIT_REACHED,
        f"This reward can be redeemed {reward.per_member_limit} time(s) per member.",
    )


async def claims(
    connection: AsyncConnection, member_id: str, found: Sequence[RewardRecord]
) -> dict[int, int]:
    """How many times the member redeemed each of ``found`` that has a limit per member,
    in one query."""
    limited = [reward.id for reward in found if reward.per_member_limit is not None]
    if not limited:
        return {}
    result = await connection.execute(
        sa.select(reward_claims.c.reward_id, reward_claims.c.count).where(
            reward_claims.c.member_id == member_id, reward_claims.c.reward_id.in_(limited)
        )
    )
    return {int(reward_id): int(count) for reward_id, count in result}


@dataclass(frozen=True)
class Receipt:
    """What a member paid for a reward, from which pool, at which rate."""

    id: int
    reward_id: int
    member_id: str
    partner: str
    paid_with: str
    price_points: int
    paid_points: int
    value: Decimal
    rate: Decimal | None
    conversion_transfer_id: int | None
    redeem_transfer_id: int
    gift_code: str | None
    charity: str | None
    created_at: datetime
    replayed: bool = False

    @classmethod
    def from_row(cls, row: Any, replayed: bool = False) -> Receipt:
        return cls(
            row.id,
            row.reward_id,
            row.member_id,
            row.partner,
            row.paid_with,
            row.price_points,
            row.paid_points,
            Decimal(row.value),
            Decimal(row.rate) if row.rate else None,
            row.conversion_transfer_id,
            row.redeem_transfer_id,
            row.gift_code,
            row.charity,
            row.created_at,
            replayed,
        )
