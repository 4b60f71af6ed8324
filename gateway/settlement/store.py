"""The SQL behind settlement: claiming a period's obligations, charging the operator's fees,
and the statements, all by the database.

PostgreSQL aggregates in SQL (``INSERT ... SELECT ... GROUP BY`` on ``NUMERIC``), so a
period of a million obligations never passes through Python. SQLite has no decimal type
(its ``SUM`` would add floats), so there the same figures are computed in Python from the
period's rows, inside the same transaction: the embedded database is for small volumes.
Both give identical results; the tests run both.

Money is counted to 6 decimal places: each obligation's amount is rounded half away from
zero to a millionth before it is added (PostgreSQL's ``ROUND`` and ``ROUND_HALF_UP`` here).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.ledger.tables import obligations, transfers
from gateway.settlement.tables import (
    MICRO,
    settled_transfers,
    settlement_periods,
    statement_pairs,
    statements,
)

OPERATOR = "operator"  # the creditor of the operator's fees
FEE_KINDS = ("issuance_fee", "conversion_fee")
FEE_BEARING = ("earn", "conversion")  # transfer kinds the operator charges a fee on
SETTLEMENT_LOCK = 727275  # pg_advisory_xact_lock key: one close at a time
ZERO = Decimal(0)


def counted(amount: Decimal | str) -> Decimal:
    """An amount as settlement counts it: rounded half away from zero to 6 places."""
    return Decimal(amount).quantize(MICRO, ROUND_HALF_UP)


def _postgres(connection: AsyncConnection) -> bool:
    return connection.dialect.name == "postgresql"


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


# Closing


async def lock(connection: AsyncConnection) -> None:
    """Serialise closes. PostgreSQL: a transaction-scoped advisory lock, so a second close
    waits here and then sees the first one's period. SQLite: take the single writer's lock
    now with a write that matches no row, so a close in another process waits here instead
    of failing when it first writes."""
    if _postgres(connection):
        await connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SETTLEMENT_LOCK}
        )
    else:
        await connection.execute(sa.delete(settled_transfers).where(sa.false()))


async def claim_obligations(connection: AsyncConnection, period_id: int, end: datetime) -> int:
    """Put every obligation created before ``end`` that no period holds yet into this one:
    one UPDATE, the only statement that ever sets ``statement_period``. Rows committed
    meanwhile by other transactions are not seen and stay for the next close."""
    result = await connection.execute(
        sa.update(obligations)
        .where(obligations.c.statement_period.is_(None), obligations.c.created_at < end)
        .values(statement_period=period_id)
    )
    return int(result.rowcount)


async def mark_fee_transfers(connection: AsyncConnection, period_id: int, end: datetime) -> int:
    """Record which ledger transfers this period charges fees on: every ``earn`` and
    ``conversion`` transfer, and every ``reversal`` of one, created before ``end`` and not
    charged by an earlier period. Keyed by transfer id, so each is charged exactly once,
    also one committed after an earlier close although created before its end.

    PostgreSQL first collects them into a temporary table: an INSERT whose anti-join reads
    the table it inserts into may rescan its own new rows for every candidate (when the
    table was empty at planning, a nested loop over a sequential scan), quadratic time."""
    original = transfers.alias("original")
    basis = sa.case(
        (transfers.c.kind.in_(FEE_BEARING), transfers.c.kind),
        else_=original.c.kind + "_reversal",
    )
    columns = ["transfer_id", "period_id", "basis"]
    candidates = (
        sa.select(transfers.c.id, sa.literal(period_id, sa.BigInteger), basis)
        .select_from(transfers.outerjoin(original, original.c.id == transfers.c.reverses_id))
        .where(
            transfers.c.created_at < end,
            sa.or_(
                transfers.c.kind.in_(FEE_BEARING),
                sa.and_(transfers.c.kind == "reversal", original.c.kind.in_(FEE_BEARING)),
            ),
            ~sa.exists().where(settled_transfers.c.transfer_id == transfers.c.id),
        )
    )
    if _postgres(connection):
        await connection.execute(
            sa.text(
                "CREATE TEMPORARY TABLE fee_candidates "
                "(transfer_id BIGINT, period_id BIGINT, basis VARCHAR(24)) ON COMMIT DROP"
            )
        )
        staged = sa.table("fee_candidates", *(sa.column(name) for name in columns))
        await connection.execute(sa.insert(staged).from_select(columns, candidates))
        candidates = sa.select(*(staged.c[name] for name in columns))
    result = await connection.execute(settled_transfers.insert().from_select(columns, candidates))
    return int(result.rowcount)


_ISSUANCE_FEES = """
INSERT INTO obligations (kind, debtor, creditor, amount, created_at, statement_period)
SELECT 'issuance_fee', partner, 'operator', CAST(amount AS TEXT),
       CAST(:now AS TIMESTAMPTZ), CAST(:period AS BIGINT)
FROM (
    SELECT t.partner,
           ROUND(CAST(:fee AS NUMERIC) * SUM(CASE s.basis WHEN 'earn' THEN t.points
                                                          ELSE -t.points END), 6) AS amount
    FROM settled_transfers s JOIN transfers t ON t.id = s.transfer_id
    WHERE s.period_id = :period AND s.basis IN ('earn', 'earn_reversal')
    GROUP BY t.partner
) AS fees
WHERE amount <> 0
"""

_CONVERSION_FEES = """
INSERT INTO obligations (kind, debtor, creditor, amount, created_at, statement_period)
SELECT 'conversion_fee', partner, 'operator', CAST(amount AS TEXT),
       CAST(:now AS TIMESTAMPTZ), CAST(:period AS BIGINT)
FROM (
    SELECT t.partner,
           ROUND(SUM(CASE s.basis WHEN 'conversion' THEN t.fee ELSE -t.fee END
                     * v.point_value), 6) AS amount
    FROM settled_transfers s JOIN transfers t ON t.id = s.transfer_id
    JOIN unnest(CAST(:slugs AS TEXT[]), CAST(:values AS NUMERIC[])) AS v(partner, point_value)
      ON v.partner = t.partner
    WHERE s.period_id = :period AND s.basis IN ('conversion', 'conversion_reversal')
      AND t.fee IS NOT NULL
    GROUP BY t.partner
) AS fees
WHERE amount <> 0
"""


def fees_of(
    basis: Iterable[tuple[str, str, int, int | None]],
    fee_per_point: Decimal,
    point_values: Mapping[str, Decimal],
) -> list[tuple[str, str, Decimal]]:
    """(kind, partner, amount) of the fee obligations for marked transfers given as
    (basis, partner, points, fee): per partner, ``fee_per_point`` times the points it
    issued net of reversed earns, and its conversions' fee points at its point value, net
    of reversed conversions. Zero amounts give no row."""
    issued: dict[str, int] = defaultdict(int)
    converted: dict[str, Decimal] = defaultdict(Decimal)
    for kind, partner, points, fee in basis:
        sign = -1 if kind.endswith("_reversal") else 1
        if kind.startswith("earn"):
            issued[partner] += sign * points
        elif fee is not None and partner in point_values:
            converted[partner] += sign * fee * point_values[partner]
    rows = [("issuance_fee", p, counted(fee_per_point * n)) for p, n in sorted(issued.items())]
    rows += [("conversion_fee", p, counted(value)) for p, value in sorted(converted.items())]
    return [row for row in rows if row[2] != 0]


async def charge_fees(
    connection: AsyncConnection,
    period_id: int,
    fee_per_point: Decimal,
    point_values: Mapping[str, Decimal],
    now: datetime,
) -> int:
    """Insert this period's fee obligations (debtor the partner, creditor ``operator``,
    already in the period) from the transfers ``mark_fee_transfers`` marked; their count."""
    if _postgres(connection):
        params: dict[str, Any] = {"period": period_id, "now": now}
        count = 0
        if fee_per_point:
            result = await connection.execute(
                sa.text(_ISSUANCE_FEES), {**params, "fee": fee_per_point}
            )
            count += int(result.rowcount)
        slugs = sorted(point_values)
        result = await connection.execute(
            sa.text(_CONVERSION_FEES),
            {**params, "slugs": slugs, "values": [point_values[s] for s in slugs]},
        )
        return count + int(result.rowcount)
    marked = await connection.execute(
        sa.select(
            settled_transfers.c.basis, transfers.c.partner, transfers.c.points, transfers.c.fee
        )
        .join(transfers, transfers.c.id == settled_transfers.c.transfer_id)
        .where(settled_transfers.c.period_id == period_id)
    )
    rows = [
        {
            "kind": kind,
            "debtor": partner,
            "creditor": OPERATOR,
            "amount": str(amount),
            "created_at": now,
            "statement_period": period_id,
        }
        for kind, partner, amount in fees_of(
            [tuple(row) for row in marked], fee_per_point, point_values
        )
    ]
    if rows:
        await connection.execute(sa.insert(obligations), rows)
    return len(rows)


# Statements

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
    if not _postgres(connection):
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
    if _postgres(connection):
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


async def insert_period(connection: AsyncConnection, values: dict[str, Any]) -> None:
    await connection.execute(sa.insert(settlement_periods).values(**values))


# Reconciliation

_LAST_CLOSE = "(SELECT MAX(closes_at) FROM settlement_periods)"

LEDGER_CHECKS = {
    "a conversion has no obligation from its source partner (transfer, from, to)": """
        SELECT t.id, t.partner, t.to_partner FROM transfers t
        WHERE t.kind = 'conversion' AND NOT EXISTS (
            SELECT 1 FROM obligations o WHERE o.transfer_id = t.id AND o.debtor = t.partner)
    """,
    "a reversed conversion has no obligation giving its value back (reversal, conversion)": """
        SELECT r.id, t.id FROM transfers r JOIN transfers t ON t.id = r.reverses_id
        WHERE r.kind = 'reversal' AND t.kind = 'conversion' AND NOT EXISTS (
            SELECT 1 FROM obligations o WHERE o.debtor = t.to_partner
              AND (o.transfer_id = r.id OR o.transfer_id = t.id))
    """,
    "a cross-brand reward redemption has no reward obligation (redemption, paid with, reward's "
    "partner)": """
        SELECT r.id, r.paid_with, r.partner FROM reward_redemptions r
        WHERE r.paid_with <> r.partner AND NOT EXISTS (
            SELECT 1 FROM obligations o WHERE o.redemption_id = r.id AND o.kind = 'reward'
              AND o.debtor = r.paid_with AND o.creditor = r.partner)
    """,
    "a movement has more than one obligation of a kind (transfer, debtor, kind, count)": """
        SELECT transfer_id, debtor, kind, COUNT(*) FROM obligations
        WHERE transfer_id IS NOT NULL
        GROUP BY transfer_id, debtor, kind HAVING COUNT(*) > 1
    """,
    "an obligation created before the last close is in no statement (obligation, kind, "
    "debtor, creditor)": f"""
        SELECT o.id, o.kind, o.debtor, o.creditor FROM obligations o
        WHERE o.statement_period IS NULL AND o.created_at < {_LAST_CLOSE}
    """,
    "an obligation is in a period that was never closed (obligation, period)": """
        SELECT o.id, o.statement_period FROM obligations o
        WHERE o.statement_period IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM settlement_periods p WHERE p.id = o.statement_period)
    """,
    "a period's count of obligations differs from the obligations it holds (period, "
    "recorded, held)": """
        SELECT p.id, p.obligation_count, COUNT(o.id) FROM settlement_periods p
        LEFT JOIN obligations o ON o.statement_period = p.id
        GROUP BY p.id, p.obligation_count HAVING p.obligation_count <> COUNT(o.id)
    """,
    "a fee mark names a period that was never closed (transfer, period)": """
        SELECT s.transfer_id, s.period_id FROM settled_transfers s
        WHERE NOT EXISTS (SELECT 1 FROM settlement_periods p WHERE p.id = s.period_id)
    """,
    "a fee-bearing transfer created before the last close was never charged (transfer, "
    "kind, partner)": f"""
        SELECT t.id, t.kind, t.partner FROM transfers t
        LEFT JOIN transfers original ON original.id = t.reverses_id
        WHERE t.created_at < {_LAST_CLOSE}
          AND (t.kind IN ('earn', 'conversion')
               OR (t.kind = 'reversal' AND original.kind IN ('earn', 'conversion')))
          AND NOT EXISTS (SELECT 1 FROM settled_transfers s WHERE s.transfer_id = t.id)
    """,
}


async def ledger_findings(
    connection: AsyncConnection, limit: int = 20
) -> list[tuple[str, int, list[tuple[Any, ...]]]]:
    """(check, how many rows break it, the first ``limit`` of them) for each failed check."""
    found = []
    for name, query in LEDGER_CHECKS.items():
        rows = [tuple(row) for row in await connection.execute(sa.text(query))]
        if rows:
            found.append((name, len(rows), rows[:limit]))
    return found


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
