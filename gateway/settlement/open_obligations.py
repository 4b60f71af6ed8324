"""Obligations no closed period holds yet, added up per (debtor, creditor): the matrix the
operator's console shows, and what closing a period ending at *E* would take (those created
before *E*). The operator's fees are not obligations until a close charges them.

Amounts are counted like a close counts them (``store.counted``): PostgreSQL adds them up
in SQL; SQLite, which has no decimal type, in Python."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.ledger.tables import obligations
from gateway.settlement.store import counted, is_postgres
from gateway.settlement.tables import settlement_periods

ZERO = Decimal(0)


@dataclass(frozen=True)
class OpenPair:
    debtor: str
    creditor: str
    amount: Decimal  # what the debtor owes the creditor, in the settlement currency
    count: int
    first_at: datetime
    last_at: datetime


@dataclass(frozen=True)
class OpenObligations:
    since: datetime | None  # the last closed period's end; None before the first close
    until: datetime | None  # excluded; None: every open obligation
    pairs: tuple[OpenPair, ...]

    @property
    def count(self) -> int:
        return sum(pair.count for pair in self.pairs)

    @property
    def total(self) -> Decimal:
        return sum((pair.amount for pair in self.pairs), ZERO)


def _open(until: datetime | None) -> list[sa.ColumnElement[bool]]:
    conditions = [obligations.c.statement_period.is_(None)]
    if until is not None:
        conditions.append(obligations.c.created_at < until)
    return conditions


async def open_obligations(connection: AsyncConnection, until: datetime | None) -> OpenObligations:
    since = await connection.scalar(sa.select(sa.func.max(settlement_periods.c.closes_at)))
    where = _open(until)
    if is_postgres(connection):
        amount = sa.func.sum(sa.func.round(sa.cast(obligations.c.amount, sa.Numeric), 6))
        query = (
            sa.select(
                obligations.c.debtor,
                obligations.c.creditor,
                amount.label("amount"),
                sa.func.count().label("n"),
                sa.func.min(obligations.c.created_at).label("first_at"),
                sa.func.max(obligations.c.created_at).label("last_at"),
            )
            .where(*where)
            .group_by(obligations.c.debtor, obligations.c.creditor)
        )
        pairs = [
            OpenPair(
                row.debtor, row.creditor, counted(row.amount), row.n, row.first_at, row.last_at
            )
            for row in await connection.execute(query)
        ]
    else:
        pairs = await _added_in_python(connection, where)
    pairs.sort(key=lambda pair: (pair.debtor, pair.creditor))
    return OpenObligations(since, until, tuple(pairs))


async def _added_in_python(
    connection: AsyncConnection, where: list[sa.ColumnElement[bool]]
) -> list[OpenPair]:
    rows = await connection.execute(
        sa.select(
            obligations.c.debtor,
            obligations.c.creditor,
            obligations.c.amount,
            obligations.c.created_at,
        ).where(*where)
    )
    grouped: dict[tuple[str, str], list[tuple[Decimal, datetime]]] = defaultdict(list)
    for row in rows:
        grouped[(row.debtor, row.creditor)].append((counted(row.amount), row.created_at))
    return [
        OpenPair(
            debtor,
            creditor,
            sum((amount for amount, _ in found), ZERO),
            len(found),
            min(moment for _, moment in found),
            max(moment for _, moment in found),
        )
        for (debtor, creditor), found in grouped.items()
    ]
