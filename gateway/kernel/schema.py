"""What every package's tables share: the metadata they are declared on and the column
types (ids, moments). Alembic migrations in ``gateway/migrations`` create the tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel

metadata = SQLModel.metadata

# BIGINT in PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Moment(sa.TypeDecorator[datetime]):
    """An aware UTC datetime on every database (SQLite keeps no offset of its own)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def insert_for(connection: AsyncConnection, table: sa.Table) -> Any:
    """An INSERT into ``table`` in the connection's dialect (which has ON CONFLICT)."""
    return (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(table)
