"""Checks the ledger's invariants against the database; the CLI and tests run it."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

CHECKS = {
    "a pool's entries do not sum to zero": """
        SELECT pool, SUM(amount) FROM entries GROUP BY pool HAVING SUM(amount) <> 0
    """,
    "a transfer does not balance within a pool": """
        SELECT transfer_id, pool, SUM(amount) FROM entries
        GROUP BY transfer_id, pool HAVING SUM(amount) <> 0
    """,
    "a member wallet is negative": """
        SELECT id, balance FROM accounts WHERE code = 'wallet' AND balance < 0
    """,
    "a wallet's balance differs from the sum of its entries": """
        SELECT a.id, a.balance, COALESCE(SUM(e.amount), 0) FROM accounts a
        LEFT JOIN entries e ON e.account_id = a.id
        WHERE a.code = 'wallet' GROUP BY a.id, a.balance
        HAVING a.balance <> COALESCE(SUM(e.amount), 0)
    """,
    "a wallet entry's balance_after is not its wallet's running sum in posting order": """
        SELECT account_id, id, balance_after, running FROM (
            SELECT e.account_id, e.id, e.balance_after,
                   SUM(e.amount) OVER (PARTITION BY e.account_id ORDER BY e.id) AS running
            FROM entries e JOIN accounts a ON a.id = e.account_id
            WHERE a.code = 'wallet') AS x
        WHERE balance_after IS NOT NULL AND balance_after <> running
    """,
    "a conversion is not posted in both pools": """
        SELECT t.id FROM transfers t WHERE t.kind = 'conversion' AND 2 <> (
            SELECT COUNT(DISTINCT e.pool) FROM entries e WHERE e.transfer_id = t.id)
    """,
    "a pool's holds account differs from its open holds": """
        SELECT a.pool, COALESCE(SUM(e.amount), 0) FROM accounts a
        LEFT JOIN entries e ON e.account_id = a.id
        WHERE a.code = 'holds' GROUP BY a.pool
        HAVING COALESCE(SUM(e.amount), 0) <> (
            SELECT COALESCE(SUM(h.points), 0) FROM holds h
            WHERE h.partner = a.pool AND h.status = 'authorized')
    """,
    "a completed remote operation has no transfer": """
        SELECT id FROM remote_operations WHERE status = 'completed' AND transfer_id IS NULL
    """,
    "a compensated remote operation was not reversed": """
        SELECT o.id FROM remote_operations o WHERE o.status = 'compensated' AND NOT EXISTS (
            SELECT 1 FROM transfers t
            WHERE t.id = o.compensation_id AND t.reverses_id = o.transfer_id)
    """,
    "a transfer's reversals add up to more than it or to other than its running total": """
        SELECT t.id, t.points, SUM(r.points), MAX(x.points) FROM transfers t
        JOIN transfers r ON r.reverses_id = t.id
        LEFT JOIN reversed_totals x ON x.transfer_id = t.id
        GROUP BY t.id, t.points
        HAVING SUM(r.points) > t.points OR SUM(r.points) <> COALESCE(MAX(x.points), 0)
    """,
    "a transfer has no entries": """
        SELECT t.id FROM transfers t
        WHERE NOT EXISTS (SELECT 1 FROM entries e WHERE e.transfer_id = t.id)
    """,
}


async def audit(engine: AsyncEngine) -> list[str]:
    """Every broken invariant with the rows that break it; empty when the ledger is sound."""
    problems: list[str] = []
    async with engine.connect() as connection:
        for name, query in CHECKS.items():
            rows = (await connection.execute(text(query))).all()
            problems.extend(f"{name}: {tuple(row)}" for row in rows[:20])
    return problems
