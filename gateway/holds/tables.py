"""The table of point-of-sale holds. Migration 0003 creates it."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from gateway.kernel.schema import BigId, Moment


class Hold(SQLModel, table=True):
    """Points set aside for a point-of-sale redemption until it is captured, voided or
    expires. The conditional update of ``status`` from ``authorized`` settles it once."""

    __tablename__ = "holds"
    __table_args__ = (
        sa.Index("ix_holds_open_expiry", "status", "expires_at"),
        sa.Index("ix_holds_member", "member_id", "partner"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    member_id: str = Field(foreign_key="members.id", max_length=36)
    partner: str = Field(max_length=32)
    points: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    captured_points: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    status: str = Field(max_length=16)  # authorized | captured | voided | expired
    reason: str | None = Field(default=None, max_length=500)
    hold_transfer_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"), nullable=False, unique=True)
    )
    settle_transfer_id: int | None = Field(
        default=None, sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"), unique=True)
    )
    created_at: datetime = Field(sa_type=Moment)
    expires_at: datetime = Field(sa_type=Moment)
    settled_at: datetime | None = Field(default=None, sa_type=Moment)


holds = Hold.__table__  # type: ignore[attr-defined]
