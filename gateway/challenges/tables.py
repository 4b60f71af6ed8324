"""Tables of challenges and badges (issue 5). Migration 0010 creates them.

``challenges`` holds every challenge: those of coalition.toml (``source = 'config'``, synced
from the configuration at start) and those created through GraphQL (``source = 'api'``).
``challenge_awards`` holds each badge a member earned: one row per challenge, member and
period, which its unique key guarantees however many evaluations run at once.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from gateway.kernel.schema import BigId, Moment


class ChallengeRow(SQLModel, table=True):
    __tablename__ = "challenges"
    __table_args__ = (sa.Index("ix_challenges_active", "active"),)

    slug: str = Field(primary_key=True, max_length=32)
    source: str = Field(max_length=8)  # config | api
    owner: str | None = Field(default=None, max_length=32)  # None: the coalition's
    kind: str = Field(max_length=24)
    period: str = Field(max_length=8)
    target: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    name: str = Field(max_length=120)
    badge: str = Field(max_length=80)
    description: str | None = Field(default=None, max_length=1000)
    partner: str | None = Field(default=None, max_length=32)
    bonus_points: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    bonus_partner: str | None = Field(default=None, max_length=32)
    valid_from: datetime | None = Field(default=None, sa_type=Moment)
    valid_until: datetime | None = Field(default=None, sa_type=Moment)
    active: bool = Field(default=True)
    created_at: datetime = Field(sa_type=Moment)
    updated_at: datetime = Field(sa_type=Moment)
    # When ``challenge_counters`` were last built from the ledger for it; None: to build.
    counted_at: datetime | None = Field(default=None, sa_type=Moment)


class ChallengeAward(SQLModel, table=True):
    """A badge a member earned: the challenge met in one period, and the bonus it paid."""

    __tablename__ = "challenge_awards"
    __table_args__ = (
        sa.UniqueConstraint(
            "challenge", "member_id", "period_start", name="ux_challenge_awards_once"
        ),
        sa.Index("ix_challenge_awards_member", "member_id", "awarded_at"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    challenge: str = Field(foreign_key="challenges.slug", max_length=32)
    member_id: str = Field(foreign_key="members.id", max_length=36)
    period_start: datetime = Field(sa_type=Moment)
    period_end: datetime = Field(sa_type=Moment)
    badge: str = Field(max_length=80)  # the badge's name when it was awarded
    count: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))  # progress then
    bonus_points: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    bonus_partner: str | None = Field(default=None, max_length=32)
    bonus_transfer_id: int | None = Field(
        default=None, sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"), unique=True)
    )
    awarded_at: datetime = Field(sa_type=Moment)


challenges = ChallengeRow.__table__  # type: ignore[attr-defined]
challenge_awards = ChallengeAward.__table__  # type: ignore[attr-defined]


class ChallengeCounter(SQLModel, table=True):
    """A member's progress in one challenge and period, per partner the earns were at:
    ``visits`` earns not reversed in full, ``points`` their points left after reversals.
    Updated in each earn's (and reversal's) transaction; a merge adds the retired member's
    rows to the survivor's."""

    __tablename__ = "challenge_counters"
    __table_args__ = (sa.Index("ix_challenge_counters_period", "challenge", "period_start"),)

    challenge: str = Field(primary_key=True, max_length=32)
    member_id: str = Field(primary_key=True, max_length=36)
    period_start: datetime = Field(primary_key=True, sa_type=Moment)
    partner: str = Field(primary_key=True, max_length=32)
    visits: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    points: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))


challenge_counters = ChallengeCounter.__table__  # type: ignore[attr-defined]
