"""The ledger's tables: members, enrolments, accounts, transfers, entries, reversed totals
and obligations. Alembic migrations in ``gateway/migrations`` create them.

``transfers`` and ``entries`` are append-only: database triggers refuse UPDATE and DELETE.
Only a member wallet row carries a balance, kept equal to the sum of its entries.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from gateway.kernel.schema import BigId, Moment


class Member(SQLModel, table=True):
    """A coalition member. A member merged into another keeps its row, pointing at the
    survivor, so that its id (and its history) still resolves."""

    __tablename__ = "members"
    __table_args__ = (
        sa.Index(
            "ix_members_merged_into",
            "merged_into",
            postgresql_where=sa.text("merged_into IS NOT NULL"),
            sqlite_where=sa.text("merged_into IS NOT NULL"),
        ),
    )

    id: str = Field(primary_key=True, max_length=36)
    created_at: datetime = Field(sa_type=Moment)
    merged_into: str | None = Field(default=None, max_length=36)
    merged_at: datetime | None = Field(default=None, sa_type=Moment)
    # Set when the member's personal data was erased (gateway.privacy); migration 0022.
    erased_at: datetime | None = Field(default=None, sa_type=Moment)


class Enrolment(SQLModel, table=True):
    """A partner's own customer id for a member. SSO identities get a table of their own."""

    __tablename__ = "enrolments"

    partner: str = Field(primary_key=True, max_length=32)
    customer_id: str = Field(primary_key=True, max_length=128)
    member_id: str = Field(foreign_key="members.id", index=True, max_length=36)
    created_at: datetime = Field(sa_type=Moment)


class Account(SQLModel, table=True):
    __tablename__ = "accounts"
    __table_args__ = (
        sa.Index(
            "ux_accounts_wallet",
            "member_id",
            "pool",
            unique=True,
            postgresql_where=sa.text("member_id IS NOT NULL"),
            sqlite_where=sa.text("member_id IS NOT NULL"),
        ),
        sa.Index(
            "ux_accounts_system",
            "pool",
            "code",
            unique=True,
            postgresql_where=sa.text("member_id IS NULL"),
            sqlite_where=sa.text("member_id IS NULL"),
        ),
        sa.CheckConstraint("code <> 'wallet' OR balance >= 0", name="ck_wallet_not_negative"),
        sa.CheckConstraint(
            "(code = 'wallet') = (member_id IS NOT NULL)", name="ck_wallet_has_member"
        ),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    pool: str = Field(max_length=32)
    code: str = Field(max_length=16)
    member_id: str | None = Field(default=None, foreign_key="members.id", max_length=36)
    balance: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))


class Transfer(SQLModel, table=True):
    __tablename__ = "transfers"
    __table_args__ = (
        sa.UniqueConstraint(
            "idempotency_scope", "idempotency_key", name="ux_transfers_idempotency"
        ),
        sa.Index(
            "ix_transfers_reverses",
            "reverses_id",
            postgresql_where=sa.text("reverses_id IS NOT NULL"),
            sqlite_where=sa.text("reverses_id IS NOT NULL"),
        ),
        sa.Index("ix_transfers_member_created", "member_id", "created_at"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    kind: str = Field(max_length=16)
    member_id: str | None = Field(default=None, foreign_key="members.id", max_length=36)
    partner: str = Field(max_length=32)
    to_partner: str | None = Field(default=None, max_length=32)
    points: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    received_points: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    purchase_amount: str | None = Field(default=None, max_length=40)
    rate: str | None = Field(default=None, max_length=40)
    fee: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    reason: str | None = Field(default=None, max_length=500)
    reverses_id: int | None = Field(
        default=None,
        sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"), nullable=True),
    )
    idempotency_scope: str = Field(max_length=80)
    idempotency_key: str = Field(max_length=255)
    request_hash: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=Moment)


class ReversedTotal(SQLModel, table=True):
    """How much of a transfer its reversals took back so far (a transfer may be reversed in
    parts that add up to it, never beyond): one row per reversed transfer, raised by each
    reversal in its transaction, so the next one reads one row, not every earlier reversal.
    ``last_reversal_id``: the latest of them (``reversedBy``)."""

    __tablename__ = "reversed_totals"
    __table_args__ = (sa.CheckConstraint("points > 0", name="ck_reversed_positive"),)

    transfer_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"), primary_key=True)
    )
    points: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    last_reversal_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"), nullable=False)
    )


class Entry(SQLModel, table=True):
    __tablename__ = "entries"
    __table_args__ = (
        # Only wallet entries have a member: system accounts' entries stay out.
        sa.Index(
            "ix_entries_member_history",
            "member_id",
            "transfer_id",
            postgresql_where=sa.text("member_id IS NOT NULL"),
            sqlite_where=sa.text("member_id IS NOT NULL"),
        ),
        sa.Index(
            "ix_entries_member_pool_history",
            "member_id",
            "pool",
            "transfer_id",
            postgresql_where=sa.text("member_id IS NOT NULL"),
            sqlite_where=sa.text("member_id IS NOT NULL"),
        ),
        sa.Index("ix_entries_account", "account_id"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    transfer_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"), nullable=False, index=True)
    )
    account_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("accounts.id"), nullable=False)
    )
    pool: str = Field(max_length=32)
    member_id: str | None = Field(default=None, max_length=36)
    amount: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    balance_after: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))


class Obligation(SQLModel, table=True):
    """What one partner owes another (or the operator) in the settlement currency; each
    goes into exactly one settlement statement when its period is closed."""

    __tablename__ = "obligations"
    __table_args__ = (sa.Index("ix_obligations_open", "statement_period", "created_at"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    kind: str = Field(max_length=16)  # reward | conversion | issuance_fee
    debtor: str = Field(max_length=32)
    creditor: str = Field(max_length=32)  # a partner, or "operator"
    amount: str = Field(max_length=40)  # decimal string, settlement currency
    transfer_id: int | None = Field(
        default=None, sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"))
    )
    redemption_id: int | None = Field(
        default=None, sa_column=sa.Column(BigId, sa.ForeignKey("reward_redemptions.id"))
    )
    created_at: datetime = Field(sa_type=Moment)
    statement_period: int | None = Field(default=None, sa_column=sa.Column(BigId))


members = Member.__table__  # type: ignore[attr-defined]
enrolments = Enrolment.__table__  # type: ignore[attr-defined]
accounts = Account.__table__  # type: ignore[attr-defined]
transfers = Transfer.__table__  # type: ignore[attr-defined]
entries = Entry.__table__  # type: ignore[attr-defined]
reversed_totals = ReversedTotal.__table__  # type: ignore[attr-defined]
obligations = Obligation.__table__  # type: ignore[attr-defined]
