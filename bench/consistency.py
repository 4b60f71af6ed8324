"""The ledger's consistency after a run, in SQL: what holds whatever else the gateway posted.

- every pool's entries sum to zero, and every transfer's entries in each pool do;
- every wallet's balance is the sum of its entries;
- each earn the bench asked for (gateway, direct, the traced ones) posted exactly one
  transfer under its idempotency key: an earn of its points for its member at its partner,
  with exactly two legs, the wallet's credit and the issuance account's debit;
- the seeded history is all there.

Transfers the bench did not ask for (the programme's challenge bonuses, say) are counted by
scope and kind and printed, not judged: they are checked by the invariants above.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg  # type: ignore[import-untyped]  # ships no type information

from bench.workload import Earn

POOL_TOTALS = """
SELECT pool, COUNT(*) AS entries, SUM(amount) AS total FROM entries GROUP BY pool ORDER BY pool
"""
UNBALANCED_TRANSFERS = """
SELECT COUNT(*) FROM (
    SELECT transfer_id FROM entries GROUP BY transfer_id, pool HAVING SUM(amount) <> 0
) AS unbalanced
"""
WALLET_MISMATCHES = """
SELECT COUNT(*) AS wallets,
       COUNT(*) FILTER (WHERE balance <> posted) AS mismatched
FROM (
    SELECT a.id, a.balance, COALESCE(SUM(e.amount), 0) AS posted
    FROM accounts a LEFT JOIN entries e ON e.account_id = a.id
    WHERE a.member_id IS NOT NULL
    GROUP BY a.id, a.balance
) AS wallets
"""
BENCH_EARNS = """
CREATE TEMPORARY TABLE bench_earns (
    key text PRIMARY KEY, partner text NOT NULL, member_id text NOT NULL, points bigint NOT NULL
) ON COMMIT DROP
"""
EARN_CHECK = """
WITH matched AS (
    SELECT b.key, COUNT(t.id) AS found,
           bool_and(t.kind = 'earn' AND t.member_id = b.member_id AND t.partner = b.partner
                    AND t.points = b.points) AS fields_ok
    FROM bench_earns b LEFT JOIN transfers t ON t.idempotency_key = b.key
    GROUP BY b.key
), legs AS (
    SELECT b.key, COUNT(*) AS legs,
           COUNT(*) FILTER (WHERE e.member_id = b.member_id AND e.pool = b.partner
                            AND e.amount = b.points AND e.balance_after IS NOT NULL) AS credits,
           COUNT(*) FILTER (WHERE e.member_id IS NULL AND e.pool = b.partner
                            AND e.amount = -b.points) AS debits
    FROM bench_earns b
    JOIN transfers t ON t.idempotency_key = b.key
    JOIN entries e ON e.transfer_id = t.id
    GROUP BY b.key
)
SELECT COUNT(*) AS requested,
       COUNT(*) FILTER (WHERE m.found = 0) AS missing,
       COUNT(*) FILTER (WHERE m.found > 1) AS doubled,
       COUNT(*) FILTER (
           WHERE m.found = 1 AND NOT COALESCE(
               m.fields_ok AND l.legs = 2 AND l.credits = 1 AND l.debits = 1, false)
       ) AS wrong
FROM matched m LEFT JOIN legs l USING (key)
"""
OTHER_TRANSFERS = """
SELECT split_part(t.idempotency_scope, ':', 1) AS scope, t.kind, COUNT(*) AS transfers
FROM transfers t LEFT JOIN bench_earns b ON b.key = t.idempotency_key
WHERE b.key IS NULL
GROUP BY 1, 2 ORDER BY 1, 2
"""
SEEDED_SCOPE = "bench-history"


@dataclass(frozen=True)
class PoolTotal:
    pool: str
    entries: int
    total: int

    @property
    def balanced(self) -> bool:
        return self.total == 0


@dataclass(frozen=True)
class Ledger:
    """What the consistency check found."""

    pools: list[PoolTotal]
    unbalanced_transfers: int
    wallets: int
    mismatched: int  # wallets whose balance is not the sum of their entries
    requested: int  # earns the bench asked for
    missing: int  # ... that posted no transfer
    doubled: int  # ... that posted more than one
    wrong: int  # ... whose one transfer or its legs differ from the request
    seeded_expected: int
    others: list[tuple[str, str, int]]  # transfers the bench did not ask for: scope, kind

    @property
    def seeded(self) -> int:
        return sum(count for scope, _, count in self.others if scope == SEEDED_SCOPE)

    @property
    def consistent(self) -> bool:
        return (
            all(pool.balanced for pool in self.pools)
            and self.unbalanced_transfers == 0
            and self.mismatched == 0
            and self.missing == 0
            and self.doubled == 0
            and self.wrong == 0
            and self.seeded == self.seeded_expected
        )


async def check_ledger(
    connection: asyncpg.Connection, earns: Sequence[Earn], seeded: int
) -> Ledger:
    """``earns``: every earn the bench asked for; ``seeded``: transfers seeded as history."""
    pools = [
        PoolTotal(row["pool"], row["entries"], int(row["total"]))
        for row in await connection.fetch(POOL_TOTALS)
    ]
    unbalanced = await connection.fetchval(UNBALANCED_TRANSFERS)
    wallets = await connection.fetchrow(WALLET_MISMATCHES)
    async with connection.transaction():
        await connection.execute(BENCH_EARNS)
        await connection.copy_records_to_table(
            "bench_earns",
            records=[(e.key, e.partner, e.member.uuid, e.points) for e in earns],
        )
        await connection.execute("ANALYZE bench_earns")
        counts = await connection.fetchrow(EARN_CHECK)
        others = [
            (row["scope"], row["kind"], row["transfers"])
            for row in await connection.fetch(OTHER_TRANSFERS)
        ]
    return Ledger(
        pools,
        unbalanced,
        wallets["wallets"],
        wallets["mismatched"],
        counts["requested"],
        counts["missing"],
        counts["doubled"],
        counts["wrong"],
        seeded,
        others,
    )


def consistency_lines(ledger: Ledger) -> list[str]:
    lines = ["consistency:"]
    for pool in ledger.pools:
        lines.append(
            f"  pool {pool.pool:<10} {pool.entries:>9} entries, "
            f"sum {pool.total:>3}  {'ok' if pool.balanced else 'NOT ZERO'}"
        )
    lines.append(
        f"  transfers whose entries do not sum to zero in a pool: {ledger.unbalanced_transfers}"
    )
    lines.append(
        f"  wallets: {ledger.wallets} checked, {ledger.mismatched} differ "
        f"from the sum of their entries"
    )
    lines.append(
        f"  bench earns: {ledger.requested} asked for; {ledger.missing} posted nothing, "
        f"{ledger.doubled} more than one transfer, {ledger.wrong} a transfer or legs "
        f"other than asked (each must be one earn transfer with its two legs)"
    )
    lines.append(f"  seeded history: {ledger.seeded} transfers of {ledger.seeded_expected} seeded")
    others = [(scope, kind, n) for scope, kind, n in ledger.others if scope != SEEDED_SCOPE]
    shown = ", ".join(f"{scope or '-'}/{kind} {n}" for scope, kind, n in others) or "none"
    lines.append(
        f"  transfers the bench did not ask for (the programme's bonuses; scope/kind): {shown}"
    )
    lines.append(f"  => {'CONSISTENT' if ledger.consistent else 'INCONSISTENT'}")
    return lines
