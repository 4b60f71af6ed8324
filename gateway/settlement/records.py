"""What settlement gives back: closed periods, statements with their bilateral positions,
and reconciliation findings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.settlement.statement_sql import PairRow

ZERO = Decimal(0)


class Direction(Enum):
    RECEIVABLE = "receivable"  # the counterparty owes the partner
    PAYABLE = "payable"  # the partner owes the counterparty
    EVEN = "even"


@dataclass(frozen=True)
class Period:
    id: int
    opens_at: datetime | None  # the previous period's end; None for the first period
    closes_at: datetime  # exclusive
    closed_at: datetime
    closed_by: str
    currency: str
    obligation_count: int
    replayed: bool = False  # a retried close: this period was closed before

    @classmethod
    def from_row(cls, row: Any, replayed: bool = False) -> Period:
        return cls(
            row.id,
            row.opens_at,
            row.closes_at,
            row.closed_at,
            row.closed_by,
            row.currency,
            row.obligation_count,
            replayed,
        )


@dataclass(frozen=True)
class Position:
    """A partner's bilateral net against one counterparty: positive when owed to it."""

    counterparty: str
    net: Decimal

    @property
    def direction(self) -> Direction:
        if self.net > 0:
            return Direction.RECEIVABLE
        return Direction.PAYABLE if self.net < 0 else Direction.EVEN


@dataclass(frozen=True)
class Statement:
    period_id: int
    partner: str
    gross_payable: Decimal
    gross_receivable: Decimal
    fees: Decimal
    net: Decimal  # receivable - payable - fees: the multilateral net against the coalition
    obligation_count: int  # obligations of the period the partner is a party to
    positions: tuple[Position, ...]


@dataclass(frozen=True)
class Finding:
    """A way the ledger and the statements disagree, with (some of) the rows at fault."""

    check: str
    count: int
    rows: list[tuple[Any, ...]]


def positions_of(partner: str, pairs: Sequence[PairRow]) -> tuple[Position, ...]:
    found = []
    for pair in pairs:
        if pair.debtor == partner:
            found.append(Position(pair.creditor, ZERO - pair.amount))  # never -0
        elif pair.creditor == partner:
            found.append(Position(pair.debtor, pair.amount))
    return tuple(sorted(found, key=lambda position: position.counterparty))
