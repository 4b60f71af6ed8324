"""Tables of the earning programme: purchases with their breakdown, activity caps,
referrals and the points a member owes after a return. Migration 0007 creates them."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from gateway.kernel.schema import BigId, Moment


class Purchase(SQLModel, table=True):
    """An earn for a purchase: what each rule gave, and what returns took back since."""

    __tablename__ = "purchases"
    __table_args__ = (
        sa.Index("ix_purchases_member", "member_id", "partner", "created_at"),
        sa.Index("ix_purchases_pending", "status", "matures_at"),
        # A member's points pending at a partner (an earn's wallet answer).
        sa.Index(
            "ix_purchases_member_pending",
            "member_id",
            "partner",
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        ),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    transfer_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"), nullable=False, unique=True)
    )
    member_id: str = Field(foreign_key="members.id", max_length=36)
    partner: str = Field(max_length=32)
    receipt: str = Field(max_length=255)  # the earn's idempotency key
    amount: str = Field(max_length=40)  # decimal text
    points: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    breakdown: str = Field(sa_column=sa.Column(sa.Text, nullable=False))  # JSON
    # JSON: the member's wallet as the earn left it (see ``EarningService.earn``); None for
    # purchases earned before it was kept.
    wallet: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    status: str = Field(max_length=16)  # pending | available
    matures_at: datetime | None = Field(default=None, sa_type=Moment)
    returned_amount: str = Field(default="0", max_length=40)
    clawed_back: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
    uncollected: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
    created_at: datetime = Field(sa_type=Moment)


class PurchaseReturn(SQLModel, table=True):
    """One return of (part of) a purchase, keyed by the caller's idempotency key: what it
    took back from the wallet (or pending points), added to the debt, or left uncollected."""

    __tablename__ = "purchase_returns"
    __table_args__ = (sa.UniqueConstraint("idempotency_scope", "idempotency_key"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    purchase_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("purchases.id"), nullable=False)
    )
    idempotency_scope: str = Field(max_length=80)
    idempotency_key: str = Field(max_length=255)
    request_hash: str = Field(max_length=64)
    amount: str = Field(max_length=40)
    taken: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    owed: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    uncollected: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    transfer_id: int | None = Field(
        default=None, sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"))
    )
    created_at: datetime = Field(sa_type=Moment)


class PromotionRow(SQLModel, table=True):
    """A promotion an operator (or the partner's app) set through the API; the earning rules
    apply it after those of the partner's file."""

    __tablename__ = "promotions"
    __table_args__ = (sa.Index("ix_promotions_partner", "partner", "ends"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    partner: str = Field(max_length=32)
    name: str = Field(max_length=200)
    starts: datetime = Field(sa_type=Moment)
    ends: datetime = Field(sa_type=Moment)
    multiplier: str | None = Field(default=None, max_length=40)
    bonus: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    tier: str | None = Field(default=None, max_length=32)
    new_at_partner: bool = Field(default=False)
    min_amount: str = Field(default="0", max_length=40)
    active: bool = Field(default=True)
    created_at: datetime = Field(sa_type=Moment)
    updated_at: datetime = Field(sa_type=Moment)


class ActivityClaim(SQLModel, table=True):
    """How many times a member was paid for an activity at a partner in one period."""

    __tablename__ = "activity_claims"

    member_id: str = Field(foreign_key="members.id", max_length=36, primary_key=True)
    partner: str = Field(max_length=32, primary_key=True)
    kind: str = Field(max_length=16, primary_key=True)
    period_start: datetime = Field(sa_type=Moment, primary_key=True)
    count: int = Field(default=0)


class ReferralCode(SQLModel, table=True):
    __tablename__ = "referral_codes"

    member_id: str = Field(foreign_key="members.id", max_length=36, primary_key=True)
    code: str = Field(max_length=16, unique=True)


class Referral(SQLModel, table=True):
    """Who referred whom; rewarded once, at the referred member's first qualifying purchase."""

    __tablename__ = "referrals"

    referred_id: str = Field(foreign_key="members.id", max_length=36, primary_key=True)
    referrer_id: str = Field(foreign_key="members.id", max_length=36)
    created_at: datetime = Field(sa_type=Moment)
    rewarded_at: datetime | None = Field(default=None, sa_type=Moment)
    rewarded_partner: str | None = Field(default=None, max_length=32)


class WalletDebt(SQLModel, table=True):
    """Points a member owes a pool after a return whose points were spent: the wallet shows
    below zero by this much, and the next earns there pay it back first."""

    __tablename__ = "wallet_debts"

    member_id: str = Field(foreign_key="members.id", max_length=36, primary_key=True)
    pool: str = Field(max_length=32, primary_key=True)
    owed: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))


purchases = Purchase.__table__  # type: ignore[attr-defined]
purchase_returns = PurchaseReturn.__table__  # type: ignore[attr-defined]
promotions = PromotionRow.__table__  # type: ignore[attr-defined]
activity_claims = ActivityClaim.__table__  # type: ignore[attr-defined]
referral_codes = ReferralCode.__table__  # type: ignore[attr-defined]
referrals = Referral.__table__  # type: ignore[attr-defined]
wallet_debts = WalletDebt.__table__  # type: ignore[attr-defined]
