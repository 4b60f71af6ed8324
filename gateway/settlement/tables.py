"""Tables of settlement: closed periods, statements, bilateral pairs and the transfers
whose fees a period charged. Migration 0005 creates them."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from gateway.kernel.schema import BigId, Moment

MICRO = Decimal("0.000001")


class Amount(sa.TypeDecorator[Decimal]):
    """An exact amount of money to 6 decimal places (rounded half away from zero):
    NUMERIC(20, 6) in PostgreSQL; in SQLite, which has no decimal type and would keep a
    float, the decimal's text."""

    impl = sa.Numeric(20, 6, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(40))
        return dialect.type_descriptor(sa.Numeric(20, 6, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Any) -> Any:
        if value is None:
            return None
        exact = Decimal(value).quantize(MICRO, ROUND_HALF_UP)
        return str(exact) if dialect.name == "sqlite" else exact

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        return None if value is None else Decimal(str(value))


def _period_key() -> sa.ForeignKey:
    """Checked at commit: a close writes its period's row last, once everything is in."""
    return sa.ForeignKey("settlement_periods.id", deferrable=True, initially="DEFERRED")


class SettlementPeriod(SQLModel, table=True):
    """A closed settlement period: the obligations created before ``closes_at`` that no
    earlier period took. Written once, by the close, and never changed (triggers refuse
    UPDATE and DELETE)."""

    __tablename__ = "settlement_periods"

    id: int = Field(sa_column=sa.Column(BigId, primary_key=True, autoincrement=False))
    opens_at: datetime | None = Field(default=None, sa_type=Moment)  # the previous end
    closes_at: datetime = Field(sa_column=sa.Column(Moment, nullable=False, unique=True))
    closed_at: datetime = Field(sa_type=Moment)
    closed_by: str = Field(max_length=255)
    currency: str = Field(max_length=3)
    obligation_count: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))


class Statement(SQLModel, table=True):
    """A partner's position in a closed period, in the settlement currency."""

    __tablename__ = "statements"

    period_id: int = Field(sa_column=sa.Column(BigId, _period_key(), primary_key=True))
    partner: str = Field(primary_key=True, max_length=32)
    gross_payable: Decimal = Field(sa_column=sa.Column(Amount, nullable=False))
    gross_receivable: Decimal = Field(sa_column=sa.Column(Amount, nullable=False))
    fees: Decimal = Field(sa_column=sa.Column(Amount, nullable=False))
    net: Decimal = Field(sa_column=sa.Column(Amount, nullable=False))
    obligation_count: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))


class StatementPair(SQLModel, table=True):
    """The bilateral net between two parties in a period: ``debtor`` owes ``creditor``
    ``amount`` (zero when they are even). One row per unordered pair."""

    __tablename__ = "statement_pairs"

    period_id: int = Field(sa_column=sa.Column(BigId, _period_key(), primary_key=True))
    debtor: str = Field(primary_key=True, max_length=32)
    creditor: str = Field(primary_key=True, max_length=32)
    amount: Decimal = Field(sa_column=sa.Column(Amount, nullable=False))


class SettledTransfer(SQLModel, table=True):
    """A ledger transfer whose operator fee a period charged (earns, conversions and their
    reversals): each is charged once, by the first close after it was committed. Only the
    close writes these, from ``transfers`` itself, so they carry no foreign keys (a
    million checks a close would spend time on); ``coalition reconcile`` checks them."""

    __tablename__ = "settled_transfers"
    __table_args__ = (sa.Index("ix_settled_transfers_period", "period_id", "basis"),)

    transfer_id: int = Field(sa_column=sa.Column(BigId, primary_key=True, autoincrement=False))
    period_id: int = Field(sa_column=sa.Column(BigId, nullable=False))
    basis: str = Field(max_length=24)  # earn | earn_reversal | conversion | conversion_reversal


settlement_periods = SettlementPeriod.__table__  # type: ignore[attr-defined]
statements = Statement.__table__  # type: ignore[attr-defined]
statement_pairs = StatementPair.__table__  # type: ignore[attr-defined]
settled_transfers = SettledTransfer.__table__  # type: ignore[attr-defined]
