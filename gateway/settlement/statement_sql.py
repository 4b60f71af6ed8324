"""The SQL of settlement statements: a period's statement per partner and its bilateral
pairs, written at the close (``INSERT ... SELECT`` in PostgreSQL, in Python on SQLite, with
identical results), computed again from the obligations, and read back as stored."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.ledger.tables import obligations
from gateway.settlement.store import FEE_KINDS, OPERATOR, ZERO, counted, is_postgres
from gateway.settlement.tables import statement_pairs, statements


@dataclass(frozen=True)
class StatementRow:
    partner: str
    gross_payable: Decimal
    gross_receivable: Decimal
    fees: Decimal
    net: Decimal
    obligation_count: int


@dataclass(frozen=True)
class PairRow:
    """``debtor`` owes ``creditor`` ``amount`` net (0 when even; then debtor < creditor)."""

    debtor: str
    creditor: str
    amount: Decimal


# The period's obligations added up per (debtor, creditor, fee or not): one scan, a few rows.
_FLOWS = """
SELECT debtor, creditor, kind IN ('issuance_fee', 'conversion_fee') AS fee,
       SUM(ROUND(CAST(amount AS NUMERIC), 6)) AS amount, COUNT(*) AS n
FROM obligations WHERE statement_period = :period
GROUP BY debtor, creditor, fee
"""

# Per party: what it owes (apart from fees), is owed, its fees; :parties get a row anyway.
_STATEMENTS = """
SELECT partner,
       SUM(payable) AS gross_payable, SUM(receivable) AS gross_receivable, SUM(fees) AS fees,
       SUM(receivable) - SUM(payable) - SUM(fees) AS net, SUM(n) AS obligation_count
FROM (
    SELECT side.partner, side.payable, side.receivable, side.fees, side.n
    FROM flows AS f
    CROSS JOIN LATERAL (VALUES
        (f.debtor, CASE WHEN f.fee THEN 0 ELSE f.amount END, 0,
                   CASE WHEN f.fee THEN f.amount ELSE 0 END, f.n),
        (f.creditor, 0, f.amount, 0, f.n)
    ) AS side(partner, payable, receivable, fees, n)
    UNION ALL
    SELECT party, 0, 0, 0, 0 FROM unnest(CAST(:parties AS TEXT[])) AS party
) AS sides
WHERE partner <> 'operator'
GROUP BY partner
"""

# Per unordered pair {a, b} (a < b, byte order): what a owes b net; stored with its sign
# turned into the direction.
_PAIRS = """
SELECT CASE WHEN owed >= 0 THEN a ELSE b END AS debtor,
       CASE WHEN owed >= 0 THEN b ELSE a END AS creditor,
       ABS(owed) AS amount
FROM (
    SELECT LEAST(debtor COLLATE "C", creditor COLLATE "C") AS a,
           GREATEST(debtor COLLATE "C", creditor COLLATE "C") AS b,
           SUM(CASE WHEN debtor COLLATE "C" < creditor COLLATE "C" THEN amount
                    ELSE -amount END) AS owed
    FROM flows WHERE debtor <> creditor
    GROUP BY 1, 2
) AS pairs
"""

_WRITE = f"""
WITH flows AS MATERIALIZED ({_FLOWS}),
written AS (
    INSERT INTO statements (period_id, partner, gross_payable, gross_receivable, fees, net,
                            obligation_count)
    SELECT CAST(:period AS BIGINT), partner, gross_payable, gross_receivable, fees, net,
           obligation_count
    FROM ({_STATEMENTS}) AS s
    RETURNING 1
)
INSERT INTO statement_pairs (period_id, debtor, creditor, amount)
SELECT CAST(:period AS BIGINT), debtor, creditor, amount FROM ({_PAIRS}) AS p
"""


def aggregate(
    rows: Iterable[tuple[str, str, str, Decimal | str]], parties: Iterable[str]
) -> tuple[list[StatementRow], list[PairRow]]:
    """Statements and bilateral pairs of obligations given as (kind, debtor, creditor,
    amount), in Python; what the SQL above computes. ``parties`` get a statement even
    without obligations. The operator gets no statement; its fees appear as pairs."""
    sums: dict[str, list[Decimal]] = {p: [ZERO, ZERO, ZERO] for p in parties}
    counts: dict[str, int] = defaultdict(int)
    owed: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for kind, debtor, creditor, raw in rows:
        amount = counted(raw)
        debtor_sums = sums.setdefault(debtor, [ZERO, ZERO, ZERO])
        debtor_sums[2 if kind in FEE_KINDS else 0] += amount
        sums.setdefault(creditor, [ZERO, ZERO, ZERO])[1] += amount
        counts[debtor] += 1
        counts[creditor] += 1
        if debtor != creditor:
            a, b = sorted((debtor, creditor))
            owed[a, b] += amount if debtor == a else -amount
    sums.pop(OPERATOR, None)
    found = [
        StatementRow(p, pay, receive, fee, receive - pay - fee, counts[p])
        for p, (pay, receive, fee) in sorted(sums.items())
    ]
    pairs = [
        PairRow(a, b, value) if value >= 0 else PairRow(b, a, -value)
        for (a, b), value in sorted(owed.items())
    ]
    return found, pairs


async def _period_rows(
    connection: AsyncConnection, period_id: int
) -> list[tuple[str, str, str, str]]:
    result = await connection.execute(
        sa.select(
            obligations.c.kind, obligations.c.debtor, obligations.c.creditor, obligations.c.amount
        ).where(obligations.c.statement_period == period_id)
    )
    return [(row[0], row[1], row[2], row[3]) for row in result]


async def expected(
    connection: AsyncConnection, period_id: int, parties: Sequence[str]
) -> tuple[list[StatementRow], list[PairRow]]:
    """The statements and pairs the period's obligations give now."""
    if not is_postgres(connection):
        return aggregate(await _period_rows(connection, period_id), parties)
    params = {"period": period_id, "parties": list(parties)}
    found = [
        StatementRow(
            row.partner,
            row.gross_payable,
            row.gross_receivable,
            row.fees,
            row.net,
            int(row.obligation_count),
        )
        for row in await connection.execute(
            sa.text(f"WITH flows AS ({_FLOWS}) {_STATEMENTS} ORDER BY partner"), params
        )
    ]
    pairs = [
        PairRow(row.debtor, row.creditor, row.amount)
        for row in await connection.execute(
            sa.text(f"WITH flows AS ({_FLOWS}) {_PAIRS}"), {"period": period_id}
        )
    ]
    return found, pairs


async def write_statements(
    connection: AsyncConnection, period_id: int, parties: Sequence[str]
) -> None:
    """The period's statements and pairs: in PostgreSQL by INSERT ... SELECT, in one
    statement over one scan of the period's obligations."""
    if is_postgres(connection):
        await connection.execute(sa.text(_WRITE), {"period": period_id, "parties": list(parties)})
        return
    found, pairs = aggregate(await _period_rows(connection, period_id), parties)
    if found:
        await connection.execute(
            sa.insert(statements),
            [{"period_id": period_id, **row.__dict__} for row in found],
        )
    if pairs:
        await connection.execute(
            sa.insert(statement_pairs),
            [{"period_id": period_id, **pair.__dict__} for pair in pairs],
        )


async def stored(
    connection: AsyncConnection, period_id: int
) -> tuple[list[StatementRow], list[PairRow]]:
    """A closed period's statements and pairs as written."""
    found = [
        StatementRow(
            row.partner,
            row.gross_payable,
            row.gross_receivable,
            row.fees,
            row.net,
            row.obligation_count,
        )
        for row in await connection.execute(
            sa.select(statements)
            .where(statements.c.period_id == period_id)
            .order_by(statements.c.partner)
        )
    ]
    pairs = [
        PairRow(row.debtor, row.creditor, row.amount)
        for row in await connection.execute(
            sa.select(statement_pairs).where(statement_pairs.c.period_id == period_id)
        )
    ]
    return found, pairs
