"""Tables of the reward catalogue: rewards, per-member claims and redemptions.
Migration 0004 creates them."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from gateway.kernel.schema import BigId, Moment


class Reward(SQLModel, table=True):
    """A reward a partner publishes, priced in its own points."""

    __tablename__ = "rewards"
    __table_args__ = (
        sa.CheckConstraint("stock IS NULL OR stock >= 0", name="ck_reward_stock"),
        sa.Index("ix_rewards_partner", "partner", "active"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    partner: str = Field(max_length=32)
    kind: str = Field(max_length=16)
    name: str = Field(max_length=120)
    description: str | None = Field(default=None, max_length=1000)
    price_points: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    value: str = Field(max_length=40)  # in the settlement currency, a decimal string
    charity: str | None = Field(default=None, max_length=120)
    valid_from: datetime = Field(sa_type=Moment)
    valid_until: datetime | None = Field(default=None, sa_type=Moment)
    stock: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    per_member_limit: int | None = Field(default=None)
    active: bool = Field(default=True)
    created_at: datetime = Field(sa_type=Moment)
    updated_at: datetime = Field(sa_type=Moment)
    # Added by migration 0008 (the tiers): what a tier-upgrade reward gives, and the lowest
    # tier that may redeem the reward.
    tier: str | None = Field(default=None, sa_column=sa.Column(sa.String(32), nullable=True))
    min_tier: str | None = Field(default=None, sa_column=sa.Column(sa.String(32), nullable=True))


class RewardClaim(SQLModel, table=True):
    """How many times a member has redeemed a reward: the per-member limit's counter."""

    __tablename__ = "reward_claims"

    reward_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("rewards.id"), primary_key=True)
    )
    member_id: str = Field(primary_key=True, foreign_key="members.id", max_length=36)
    count: int = Field(default=0)


class RewardRedemption(SQLModel, table=True):
    """A member's receipt: what was paid, from which pool, at which rate."""

    __tablename__ = "reward_redemptions"

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    reward_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("rewards.id"), nullable=False))
    member_id: str = Field(foreign_key="members.id", index=True, max_length=36)
    partner: str = Field(max_length=32)  # the reward's partner
    paid_with: str = Field(max_length=32)  # the pool the member paid from
    price_points: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    paid_points: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    value: str = Field(max_length=40)
    rate: str | None = Field(default=None, max_length=40)
    conversion_transfer_id: int | None = Field(
        default=None, sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"))
    )
    redeem_transfer_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"), nullable=False, unique=True)
    )
    gift_code: str | None = Field(default=None, max_length=64)
    charity: str | None = Field(default=None, max_length=120)
    created_at: datetime = Field(sa_type=Moment)


rewards = Reward.__table__  # type: ignore[attr-defined]
reward_claims = RewardClaim.__table__  # type: ignore[attr-defined]
reward_redemptions = RewardRedemption.__table__  # type: ignore[attr-defined]
