"""Closing a settlement period over 10k, 100k and 1M obligations: how the close grows.

Usage, from the repository root with PostgreSQL on 127.0.0.1:5432 (user postgres, trust)::

    .venv/bin/python -m bench.settlement [--sizes 10000,100000,1000000] [--earns 0.5]

The database is the one ``BENCH_DATABASE_URL`` names with ``_settle`` appended
(``coalition_bench_settle`` by default), created when missing and reset at the start of
every run (DROP SCHEMA public CASCADE; CREATE SCHEMA public), then migrated.

For each size N, on emptied tables:

1. Inserts N obligations with one ``INSERT ... SELECT ... generate_series`` (not timed):
   between the three demo partners in every direction, kinds ``reward`` and
   ``conversion``, amounts from 0.01 to 99.999 with up to three decimals, created over the
   30 days before the period's end; and ``--earns`` x N earn transfers (synthetic, without
   members or entries) on which the close charges the issuance fee. Then ANALYZE, as
   autovacuum would have.
2. Times ``SettlementService.close`` (the gateway's own code, on its engine): claiming the
   obligations, marking the fee-bearing transfers, the fee obligations, the statements and
   bilateral pairs, in one transaction.
3. Checks the result in SQL: no obligation left outside the period, and the statements
   sum to zero with the operator's fees (every amount one partner is owed another owes).
4. Times ``SettlementService.reconcile`` (every check of ``coalition reconcile``).

Prints one line per size: N, the close's seconds, obligations closed per second, and the
reconciliation's seconds. Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg  # type: ignore[import-untyped]  # ships no type information

from bench.database import Database, prepare_database
from gateway.kernel.database import create_engine, migrate
from gateway.ledger.service import LedgerService
from gateway.settlement.service import SettlementService
from partners.config.coalition import DEMO_DIRECTORY, load_coalition

END = datetime(2026, 12, 1, tzinfo=UTC)
SIZES = (10_000, 100_000, 1_000_000)

EMPTY = """
TRUNCATE statement_pairs, statements, settled_transfers, settlement_periods, obligations,
         entries, transfers RESTART IDENTITY CASCADE
"""
# Six directed pairs between the three demo partners; ids spread the rows over them.
OBLIGATIONS = """
INSERT INTO obligations (kind, debtor, creditor, amount, created_at)
SELECT CASE WHEN g % 3 = 0 THEN 'reward' ELSE 'conversion' END,
       (ARRAY['skyway', 'brewbar', 'freshmart'])[1 + g % 3],
       (ARRAY['skyway', 'brewbar', 'freshmart'])[1 + (g + 1 + (g / 3) % 2) % 3],
       CAST(ROUND(0.01 + (g * 7919 % 99990) / 1000.0, 3) AS TEXT),
       $1::timestamptz - make_interval(secs => (g * 2654435761 % 2592000))
FROM generate_series(1, $2::bigint) AS g
"""
EARNS = """
INSERT INTO transfers (kind, partner, points, idempotency_scope, idempotency_key, request_hash,
                       created_at)
SELECT 'earn', (ARRAY['skyway', 'brewbar', 'freshmart'])[1 + g % 3], 1 + g % 500,
       'bench-settlement', g::text, '', $1::timestamptz - make_interval(secs => g % 2592000)
FROM generate_series(1, $2::bigint) AS g
"""
CHECK = """
SELECT (SELECT COUNT(*) FROM obligations WHERE statement_period IS NULL) AS left_open,
       (SELECT COUNT(*) FROM statements) AS statements,
       (SELECT COALESCE(SUM(net), 0) FROM statements)
       + (SELECT COALESCE(SUM(CAST(amount AS NUMERIC)), 0) FROM obligations
          WHERE creditor = 'operator') AS imbalance
"""


@dataclass(frozen=True)
class Row:
    size: int
    close_seconds: float
    closed: int  # obligations in the period, the fees included
    reconcile_seconds: float
    problems: list[str]

    @property
    def per_second(self) -> float:
        return self.closed / self.close_seconds if self.close_seconds else 0.0


async def measure(database: Database, service: SettlementService, size: int, earns: int) -> Row:
    connection = await asyncpg.connect(database.url)
    try:
        await connection.execute(EMPTY)
        await connection.execute(OBLIGATIONS, END, size)
        if earns:
            await connection.execute(EARNS, END, earns)
        await connection.execute("ANALYZE")
        started = time.perf_counter()
        period = await service.close(END, "bench")
        close_seconds = time.perf_counter() - started
        check = await connection.fetchrow(CHECK)
        started = time.perf_counter()
        findings = await service.reconcile()
        reconcile_seconds = time.perf_counter() - started
    finally:
        await connection.close()
    problems = [f"{finding.check}: {finding.count}" for finding in findings]
    if check["left_open"]:
        problems.append(f"{check['left_open']} obligation(s) left outside the period")
    if check["imbalance"] != 0:
        problems.append(f"statements and fees do not sum to zero: {check['imbalance']}")
    if period.obligation_count < size:
        problems.append(f"the period holds {period.obligation_count} of {size} obligations")
    return Row(size, close_seconds, period.obligation_count, reconcile_seconds, problems)


async def run(sizes: Sequence[int], earns_ratio: float) -> int:
    database = Database.from_env().suffixed("_settle")
    started = time.perf_counter()
    await prepare_database(database)
    engine = create_engine(database.gateway_url, pool_size=2)
    try:
        await migrate(engine)
        coalition = load_coalition(DEMO_DIRECTORY)
        ledger = LedgerService(engine, coalition, clock=lambda: END + timedelta(hours=1))
        service = SettlementService(ledger)
        connection = await asyncpg.connect(database.url)
        version = await connection.fetchval("SHOW server_version")
        await connection.close()
        print(f"database {database.name}, PostgreSQL {version}; earn transfers: {earns_ratio} x N")
        print(f"{'obligations':>12} {'close s':>9} {'closed/s':>11} {'reconcile s':>12}")
        failed = False
        for size in sizes:
            row = await measure(database, service, size, int(size * earns_ratio))
            print(
                f"{row.size:>12,} {row.close_seconds:>9.2f} {row.per_second:>11,.0f} "
                f"{row.reconcile_seconds:>12.2f}",
                flush=True,
            )
            for problem in row.problems:
                print(f"  PROBLEM: {problem}")
            failed = failed or bool(row.problems)
    finally:
        await engine.dispose()
    print(f"run took {time.perf_counter() - started:.1f} s")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.settlement", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes",
        default=",".join(str(size) for size in SIZES),
        help="comma-separated numbers of obligations (default: %(default)s)",
    )
    parser.add_argument(
        "--earns",
        type=float,
        default=0.5,
        help="earn transfers to charge the issuance fee on, per obligation (default: 0.5)",
    )
    args = parser.parse_args(argv)
    sizes = [int(size.replace("_", "")) for size in args.sizes.split(",") if size]
    return asyncio.run(run(sizes, args.earns))


if __name__ == "__main__":
    sys.exit(main())
