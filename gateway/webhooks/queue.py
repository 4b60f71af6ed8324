"""The sending side of the deliveries table (with ``store``, the only code touching the
webhook tables).

Claims are leases (``lease_until``), taken by a conditional UPDATE, so that two runners
never send the same delivery at once, on PostgreSQL and SQLite alike."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.webhooks.store import PENDING, DeliveryRecord, delivery_of
from gateway.webhooks.tables import webhook_attempts, webhook_deliveries, webhook_endpoints


def _due(now: datetime) -> Any:
    """Pending deliveries due at an enabled endpoint, none of whose member's earlier
    deliveries there is still pending (events without a member have no order)."""
    earlier = webhook_deliveries.alias("earlier")
    d = webhook_deliveries
    return (
        sa.select(d.c.id, d.c.endpoint_id)
        .join(webhook_endpoints, webhook_endpoints.c.id == d.c.endpoint_id)
        .where(
            d.c.status == PENDING,
            d.c.next_attempt_at <= now,
            sa.or_(d.c.lease_until.is_(None), d.c.lease_until < now),
            webhook_endpoints.c.enabled.is_(True),
            ~sa.exists().where(
                earlier.c.endpoint_id == d.c.endpoint_id,
                earlier.c.member_id == d.c.member_id,
                earlier.c.status == PENDING,
                earlier.c.id < d.c.id,
            ),
        )
    )


async def endpoints_due(connection: AsyncConnection, now: datetime, limit: int) -> list[int]:
    due = _due(now).subquery()
    statement = sa.select(due.c.endpoint_id).distinct().order_by(due.c.endpoint_id).limit(limit)
    return [int(row[0]) for row in await connection.execute(statement)]


async def claim(
    connection: AsyncConnection, endpoint_id: int, now: datetime, until: datetime, limit: int
) -> list[DeliveryRecord]:
    """Lease up to ``limit`` due deliveries of the endpoint until ``until``, oldest first."""
    d = webhook_deliveries
    candidates = [
        int(row.id)
        for row in await connection.execute(
            _due(now).where(d.c.endpoint_id == endpoint_id).order_by(d.c.id).limit(limit)
        )
    ]
    if not candidates:
        return []
    result = await connection.execute(
        sa.update(d)
        .where(
            d.c.id.in_(candidates),
            d.c.status == PENDING,
            sa.or_(d.c.lease_until.is_(None), d.c.lease_until < now),
        )
        .values(lease_until=until)
        .returning(*d.c)
    )
    return sorted((delivery_of(row) for row in result), key=lambda record: record.id)


@dataclass(frozen=True)
class Outcome:
    attempted_at: datetime
    status_code: int | None
    response: str | None
    error: str | None
    duration_ms: int


async def record(
    connection: AsyncConnection,
    delivery: DeliveryRecord,
    outcome: Outcome,
    status: str,
    next_attempt_at: datetime | None,
) -> None:
    """An attempt and where the delivery stands after it (the lease ends)."""
    result = await connection.execute(
        sa.update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery.id)
        .values(
            status=status,
            attempts=webhook_deliveries.c.attempts + 1,
            first_attempt_at=delivery.first_attempt_at or outcome.attempted_at,
            next_attempt_at=next_attempt_at,
            finished_at=None if status == PENDING else outcome.attempted_at,
            lease_until=None,
        )
        .returning(webhook_deliveries.c.id)
    )
    if result.first() is None:
        return  # deleted with its endpoint meanwhile
    await connection.execute(
        sa.insert(webhook_attempts).values(
            delivery_id=delivery.id,
            attempted_at=outcome.attempted_at,
            status_code=outcome.status_code,
            response=outcome.response,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
        )
    )
