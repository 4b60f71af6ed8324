"""The endpoints' signing secrets, sealed under the master key (``gateway.kernel.sealing``)
and bound to their endpoint: the only code that reads or writes the secret columns."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.webhooks.tables import webhook_endpoints

COLUMNS = ("secret", "previous_secret")


async def set_secret(connection: AsyncConnection, endpoint_id: int, sealed: str) -> None:
    await connection.execute(
        sa.update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(secret=sealed)
    )


async def rotate_secret(
    connection: AsyncConnection,
    endpoint_id: int,
    sealed: str,
    previous_until: datetime | None,
    now: datetime,
) -> None:
    """A new secret; the current one stays as the previous until ``previous_until`` (None:
    dropped at once)."""
    t = webhook_endpoints
    await connection.execute(
        sa.update(t)
        .where(t.c.id == endpoint_id)
        .values(
            secret=sealed,
            previous_secret=t.c.secret if previous_until is not None else None,
            previous_until=previous_until,
            updated_at=now,
        )
    )


async def signing_secrets(
    connection: AsyncConnection, endpoint_id: int, now: datetime
) -> list[str]:
    """The sealed secrets that sign now: the current one, and the previous while in force."""
    t = webhook_endpoints
    row = (
        await connection.execute(
            sa.select(t.c.secret, t.c.previous_secret, t.c.previous_until).where(
                t.c.id == endpoint_id
            )
        )
    ).first()
    if row is None:
        return []
    found = [row.secret]
    if row.previous_secret and row.previous_until is not None and now < row.previous_until:
        found.append(row.previous_secret)
    return found


def secret_context(endpoint_id: int) -> str:
    return f"webhook_secret:{endpoint_id}"


async def sealed_secrets(connection: AsyncConnection) -> list[tuple[str, str, str]]:
    """Every sealed webhook secret as (key, sealing context, sealed value), the key
    ``"<endpoint id>:<column>"``: for ``coalition secrets rewrap``. Both columns of an
    endpoint are sealed under its context."""
    t = webhook_endpoints
    result = await connection.execute(
        sa.select(t.c.id, t.c.secret, t.c.previous_secret).order_by(t.c.id)
    )
    found: list[tuple[str, str, str]] = []
    for row in result:
        for column in COLUMNS:
            if getattr(row, column):
                key = f"{int(row.id)}:{column}"
                found.append((key, secret_context(int(row.id)), getattr(row, column)))
    return found


async def replace_sealed(connection: AsyncConnection, key: str, was: str, sealed: str) -> bool:
    """Store ``sealed`` (the same secret, re-wrapped) at ``key`` if it still holds ``was``
    (False when the secret changed meanwhile: a rotation)."""
    endpoint, _, column = key.partition(":")
    if column not in COLUMNS or not endpoint.isdigit():
        raise ValueError(f"not a webhook secret: {key!r}")
    result = await connection.execute(
        sa.update(webhook_endpoints)
        .where(webhook_endpoints.c.id == int(endpoint), webhook_endpoints.c[column] == was)
        .values({column: sealed})
    )
    return result.rowcount == 1
