"""The SQL of closing a settlement period: claiming its obligations, marking the transfers
whose fees it charges and charging the operator's fees (``statement_sql`` writes the
statements, ``reconciliation`` checks them).

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
from collections.abc import Iterable, Mapping
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
)

OPERATOR = "operator"  # the creditor of the operator's fees
FEE_KINDS = ("issuance_fee", "conversion_fee")
FEE_BEARING = ("earn", "conversion")  # transfer kinds the operator charges a fee on
SETTLEMENT_LOCK = 727275  # pg_advisory_xact_lock key: one close at a time
ZERO = Decimal(0)


def counted(amount: Decimal | str) -> Decimal:
    """An amount as settlement counts it: rounded half away from zero to 6 places."""
    return Decimal(amount).quantize(MICRO, ROUND_HALF_UP)


def is_postgres(connection: AsyncConnection) -> bool:
    return connection.dialect.name == "postgresql"


# Closing


async def lock(connection: AsyncConnection) -> None:
    """Serialise closes. PostgreSQL: a transaction-scoped advisory lock, so a second close
    waits here and then sees the first one's period. SQLite: take the single writer's lock
    now with a write that matches no row, so a close in another process waits here instead
    of failing when it first writes."""
    if is_postgres(connection):
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
    if is_postgres(connection):
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
    if is_postgres(connection):
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


async def insert_period(connection: AsyncConnection, values: dict[str, Any]) -> None:
    await connection.execute(sa.insert(settlement_periods).values(**values))
