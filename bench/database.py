"""The bench's PostgreSQL database: where it is and its reset (bench/consistency.py checks it)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]  # ships no type information

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/coalition_bench"


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

    def suffixed(self, suffix: str) -> Database:
        """The same server's database named like this one with ``suffix`` appended: a
        benchmark's own (``coalition_bench_settle``...)."""
        name = f"{self.name}{suffix}"
        url = urlunsplit(urlsplit(self.url)._replace(path=f"/{name}"))
        gateway_url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
        return Database(url, self.admin_url, gateway_url, name)


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
