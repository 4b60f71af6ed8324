"""The sending side of the deliveries table (with ``store``, the only code touching the
webhook tables).

Claims are leases (``lease_until``), taken by a conditional UPDATE, so that two runners
never send the same delivery at once, on PostgreSQL and SQLite alike.

An endpoint every try at which failed for ``DISABLE_AFTER`` (no 2xx answer since its
``failing_since``) is disabled by the gateway (``note_health``): its pending deliveries wait
and no new ones are made until it is enabled again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.webhooks.store import PENDING, DeliveryRecord, delivery_of
from gateway.webhooks.tables import webhook_attempts, webhook_deliveries, webhook_endpoints

DISABLE_AFTER = timedelta(days=5)
DISABLED_REASON = f"Every try for {DISABLE_AFTER.days} days failed: enable it once it answers."


def _due(now: datetime) -> Any:
    """Pending deliveries due at an enabled endpoint, none of whose line's earlier deliveries
    there is still pending (events without a member have no line, no order). Deliveries
    waiting behind an earlier one have no due time, so this reads only the heads of the
    lines (index ``ix_webhook_deliveries_due``), however long the lines are."""
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
                earlier.c.line_id == d.c.line_id,
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
            next_attempt_at=next_attempt_at,
            finished_at=None if status == PENDING else outcome.attempted_at,
            lease_until=None,
        )
        .returning(webhook_deliveries.c.line_id)
    )
    row = result.first()
    if row is None:
        return  # deleted with its endpoint meanwhile
    # The line it is in now: a merge may have moved it since it was claimed.
    if status != PENDING and row.line_id is not None:
        await _wake_next(connection, delivery.endpoint_id, row.line_id, outcome.attempted_at)
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


async def _wake_next(
    connection: AsyncConnection, endpoint_id: int, line_id: str, now: datetime
) -> None:
    """Make the line's next waiting delivery at the endpoint due (``store.add_deliveries``)."""
    d = webhook_deliveries
    waiting = (
        sa.select(d.c.id)
        .where(
            d.c.endpoint_id == endpoint_id,
            d.c.line_id == line_id,
            d.c.status == PENDING,
            d.c.next_attempt_at.is_(None),
        )
        .order_by(d.c.id)
        .limit(1)
        .scalar_subquery()
    )
    await connection.execute(sa.update(d).where(d.c.id == waiting).values(next_attempt_at=now))


async def prune(connection: AsyncConnection, before: datetime, limit: int) -> int:
    """Forget up to ``limit`` deliveries finished before ``before``, with their attempts;
    how many were looked at (``limit``: there may be more)."""
    d = webhook_deliveries
    old = [
        int(row[0])
        for row in await connection.execute(
            sa.select(d.c.id).where(d.c.finished_at < before).order_by(d.c.id).limit(limit)
        )
    ]
    if old:
        result = await connection.execute(
            sa.delete(d).where(d.c.id.in_(old), d.c.finished_at < before).returning(d.c.id)
        )
        gone = [int(row[0]) for row in result]
        if gone:
            await connection.execute(
                sa.delete(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(gone))
            )
    return len(old)


async def note_health(
    connection: AsyncConnection, endpoint_id: int, answered: bool, at: datetime
) -> datetime | None:
    """Keep the endpoint's ``failing_since`` after a try (``answered``: a 2xx answer) at
    ``at``; disable it when every try since ``DISABLE_AFTER`` ago failed. Returns the
    ``failing_since`` of an endpoint this try disabled, else None. A healthy endpoint's row
    is not written (nor locked): each UPDATE matches only on a change."""
    e = webhook_endpoints
    if answered:
        await connection.execute(
            sa.update(e)
            .where(e.c.id == endpoint_id, e.c.failing_since.is_not(None))
            .values(failing_since=None)
        )
        return None
    await connection.execute(
        sa.update(e)
        .where(e.c.id == endpoint_id, e.c.failing_since.is_(None))
        .values(failing_since=at)
    )
    disabled = await connection.execute(
        sa.update(e)
        .where(
            e.c.id == endpoint_id,
            e.c.enabled.is_(True),
            e.c.failing_since <= at - DISABLE_AFTER,
        )
        .values(enabled=False, disabled_reason=DISABLED_REASON, updated_at=at)
        .returning(e.c.failing_since)
    )
    since: datetime | None = disabled.scalar()
    return since
