"""Tables of the coalition's tiers. Migration 0008 creates them.

``member_tiers`` holds a member's tier once they have left the first (everyone's) tier; a
member without a row is in the first tier. Migration 0008 also adds two columns to
``rewards`` (``tier`` and ``min_tier``), which ``gateway/rewards/tables.py`` declares.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from gateway.kernel.schema import BigId, Moment


class MemberTier(SQLModel, table=True):
    """A member's tier. ``review_at``: when the tier is next checked against the qualifying
    value (None in the first tier, which is never reviewed); ``downgrade_at``: set at a
    review the value did not pass, the end of the grace period."""

    __tablename__ = "member_tiers"
    __table_args__ = (
        sa.Index("ix_member_tiers_review", "review_at"),
        sa.Index("ix_member_tiers_downgrade", "downgrade_at"),
    )

    member_id: str = Field(primary_key=True, foreign_key="members.id", max_length=36)
    tier: str = Field(max_length=32)
    since: datetime = Field(sa_type=Moment)
    review_at: datetime | None = Field(default=None, sa_type=Moment)
    downgrade_at: datetime | None = Field(default=None, sa_type=Moment)
    updated_at: datetime = Field(sa_type=Moment)


member_tiers = MemberTier.__table__  # type: ignore[attr-defined]


class TierContribution(SQLModel, table=True):
    """What one posting adds to (or takes from) a member's qualifying value: signed points
    at a partner, effective at ``effective_at`` (a reversal: the time of the transfer it
    reverses). Keyed by the member the points live with now (a merge re-keys them)."""

    __tablename__ = "tier_contributions"
    __table_args__ = (sa.Index("ix_tier_contributions_member", "member_id", "effective_at"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    member_id: str = Field(max_length=36)
    partner: str = Field(max_length=32)
    effective_at: datetime = Field(sa_type=Moment)
    points: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    transfer_id: int = Field(sa_column=sa.Column(BigId, nullable=False))


class TierValue(SQLModel, table=True):
    """A member's contributions effective after ``through``, summed per partner (``points``:
    JSON, partner -> points), and the earliest of them (``next_leave``, None when there is
    none): the running qualifying value and its window cursor. ``through`` None: not built
    yet (built from the contributions when first needed)."""

    __tablename__ = "tier_values"

    member_id: str = Field(primary_key=True, max_length=36)
    through: datetime | None = Field(default=None, sa_type=Moment)
    next_leave: datetime | None = Field(default=None, sa_type=Moment)
    points: str = Field(default="{}")


tier_contributions = TierContribution.__table__  # type: ignore[attr-defined]
tier_values = TierValue.__table__  # type: ignore[attr-defined]
