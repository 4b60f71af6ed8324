"""The table of remote operations (postings at partners that keep their own points).
Migration 0006 creates it."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from gateway.kernel.schema import BigId, Moment


class RemoteOperation(SQLModel, table=True):
    """One earn, redeem or conversion that moves points in a partner's own system: a saga
    whose remote step is retried with ``remote_key`` until its outcome is known.

    ``status``: pending (the remote step's outcome is not known yet), completed, failed (the
    partner refused the first step: nothing happened) or compensated (the partner refused
    after the gateway's own step, which a reversal undid). Only one operation that has not
    failed may hold a caller's key, so a refused call leaves the key free for a retry.
    """

    __tablename__ = "remote_operations"
    __table_args__ = (
        sa.Index(
            "ux_remote_operations_key",
            "idempotency_scope",
            "idempotency_key",
            unique=True,
            postgresql_where=sa.text("status <> 'failed'"),
            sqlite_where=sa.text("status <> 'failed'"),
        ),
        sa.Index("ix_remote_operations_due", "status", "next_attempt_at"),
    )

    id: str = Field(primary_key=True, max_length=36)
    kind: str = Field(max_length=16)  # earn | redeem | conversion
    status: str = Field(max_length=16)
    member_id: str = Field(foreign_key="members.id", max_length=36)
    partner: str = Field(max_length=32)
    to_partner: str | None = Field(default=None, max_length=32)
    remote_partner: str = Field(max_length=32)
    customer_id: str = Field(max_length=128)
    movement: str = Field(max_length=8)  # credit | debit, at the remote partner
    remote_points: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    points: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    received_points: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    rate: str | None = Field(default=None, max_length=40)
    fee: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    purchase_amount: str | None = Field(default=None, max_length=40)
    reason: str | None = Field(default=None, max_length=500)
    idempotency_scope: str = Field(max_length=80)
    idempotency_key: str = Field(max_length=255)
    request_hash: str = Field(max_length=64)
    remote_key: str = Field(max_length=80, unique=True)
    remote_transaction_id: str | None = Field(default=None, max_length=500)
    transfer_id: int | None = Field(
        default=None, sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"))
    )
    compensation_id: int | None = Field(
        default=None, sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"))
    )
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, max_length=500)
    next_attempt_at: datetime = Field(sa_type=Moment)
    created_at: datetime = Field(sa_type=Moment)
    updated_at: datetime = Field(sa_type=Moment)


remote_operations = RemoteOperation.__table__  # type: ignore[attr-defined]
