"""Engines for PostgreSQL (production) and embedded SQLite, and schema migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).parent.parent / "migrations"


def create_engine(
    url: str,
    pool_size: int = 20,
    *,
    pool_timeout: float = 30.0,
    statement_timeout: float = 0.0,
) -> AsyncEngine:
    """An engine for ``url``. On PostgreSQL: ``pool_timeout`` seconds of waiting for a
    connection raise ``sqlalchemy.exc.TimeoutError`` (the gateway answers SERVICE_BUSY); the
    server cancels any statement running longer than ``statement_timeout`` seconds (0: never);
    a pooled connection the server dropped is replaced instead of failing the request, and
    one that fails mid-request is invalidated, never reused."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # Size the pool for the expected concurrency: overflow connections are closed when
    # returned, and reopening one costs a connection set-up and its prepared statements.
    server_settings = {"statement_timeout": str(round(statement_timeout * 1000))}
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size // 2,
        pool_timeout=pool_timeout,
        connect_args={"server_settings": server_settings},
    )
    event.listen(engine.sync_engine, "checkout", _replace_closed)
    return engine


def _replace_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection the server has closed (its session killed, a restart) is replaced
    at checkout, before anything is sent on it. asyncpg notices the close when it happens,
    so this costs no round trip (``pool_pre_ping`` would cost three per checkout). One that
    fails later is invalidated by SQLAlchemy, with the pool's older connections."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Several gateway processes may start at once; one migrates, the others wait.
        # Migrations may rewrite big tables: not under the gateway's statement timeout.
        connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(727274)")
    command.upgrade(alembic_config(connection), "head")


def _upgrade_sqlite(connection: Connection) -> None:
    """SQLite changes a table's constraints by rebuilding it, which must not check foreign
    keys while the table is gone; the pragma only takes effect outside a transaction (which
    Python's sqlite3 has not begun yet: it begins one before a data change). The keys are
    checked once the schema is at head, and switched on again before the connection goes
    back to the pool."""
    connection.exec_driver_sql("PRAGMA foreign_keys = OFF")
    connection.commit()
    try:
        with connection.begin():
            _upgrade(connection)
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise RuntimeError(f"migrating broke foreign keys: {broken[:5]}")
    finally:
        connection.exec_driver_sql("PRAGMA foreign_keys = ON")
        connection.commit()


async def migrate(engine: AsyncEngine) -> None:
    if engine.dialect.name == "sqlite":
        async with engine.connect() as connection:
            await connection.run_sync(_upgrade_sqlite)
        return
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)
