"""The bench's PostgreSQL database: where it is, its reset, and the ledger's consistency."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]  # ships no type information

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/coalition_bench"

POOL_TOTALS = """
SELECT pool, COUNT(*) AS entries, SUM(amount) AS total FROM entries GROUP BY pool ORDER BY pool
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
POSTING_COUNTS = """
SELECT (SELECT COUNT(*) FROM transfers) AS transfers,
       (SELECT COUNT(*) FROM entries) AS entries,
       (SELECT COUNT(*) FROM (
            SELECT transfer_id FROM entries GROUP BY transfer_id HAVING COUNT(*) <> 2
        ) AS odd) AS odd_transfers
"""


@dataclass(frozen=True)
class Database:
    url: str  # postgresql:// for asyncpg
    admin_url: str  # the same server's `postgres` database
    gateway_url: str  # postgresql+asyncpg:// for the gateway's DATABASE_URL
    name: str

    @classmethod
    def from_env(cls) -> Database:
        raw = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
        scheme, _, rest = raw.partition("://")
        if scheme not in ("postgresql", "postgres", "postgresql+asyncpg"):
            raise SystemExit(f"BENCH_DATABASE_URL must be a PostgreSQL URL, got {raw!r}")
        url = f"postgresql://{rest}"
        parts = urlsplit(url)
        name = parts.path.lstrip("/")
        if not name:
            raise SystemExit(f"BENCH_DATABASE_URL names no database: {raw!r}")
        admin_url = urlunsplit(parts._replace(path="/postgres"))
        return cls(url, admin_url, f"postgresql+asyncpg://{rest}", name)


async def prepare_database(database: Database) -> None:
    """Create the database when missing and give it an empty public schema."""
    admin = await asyncpg.connect(database.admin_url)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database.name)
        if not exists:
            quoted = '"' + database.name.replace('"', '""') + '"'
            await admin.execute(f"CREATE DATABASE {quoted}")
    finally:
        await admin.close()
    connection = await asyncpg.connect(database.url)
    try:
        await connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await connection.close()


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
    """What the consistency check found, against the number of earns that succeeded."""

    expected: int
    pools: list[PoolTotal]
    wallets: int
    mismatched: int  # wallets whose balance is not the sum of their entries
    transfers: int
    entries: int
    odd_transfers: int  # transfers without exactly two entries

    @property
    def consistent(self) -> bool:
        return (
            all(pool.balanced for pool in self.pools)
            and self.mismatched == 0
            and self.transfers == self.expected
            and self.odd_transfers == 0
            and self.entries == 2 * self.transfers
        )


async def read_ledger(connection: asyncpg.Connection, expected: int) -> Ledger:
    pools = [
        PoolTotal(row["pool"], row["entries"], int(row["total"]))
        for row in await connection.fetch(POOL_TOTALS)
    ]
    wallets = await connection.fetchrow(WALLET_MISMATCHES)
    counts = await connection.fetchrow(POSTING_COUNTS)
    return Ledger(
        expected,
        pools,
        wallets["wallets"],
        wallets["mismatched"],
        counts["transfers"],
        counts["entries"],
        counts["odd_transfers"],
    )
