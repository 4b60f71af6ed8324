"""The only code touching the webhook tables."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.events.followers import lock_key
from gateway.webhooks import secrets
from gateway.webhooks.tables import webhook_attempts, webhook_deliveries, webhook_endpoints

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class EndpointRecord:
    id: int
    partner: str
    url: str
    event_types: tuple[str, ...]
    enabled: bool
    created_at: datetime
    updated_at: datetime
    failing_since: datetime | None = None  # the first failed try since the last 2xx answer
    disabled_reason: str | None = None  # why the gateway disabled it (None: a person did)


@dataclass(frozen=True)
class DeliveryRecord:
    id: int
    endpoint_id: int
    message_id: str
    event_id: int | None
    event_type: str
    member_id: str | None
    occurred_at: datetime
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    retries_from: datetime
    finished_at: datetime | None
    line_id: str | None = None  # whose line it waits in (``join_lines``); None: no order


@dataclass(frozen=True)
class AttemptRecord:
    id: int
    delivery_id: int
    attempted_at: datetime
    status_code: int | None
    response: str | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True)
class NewDelivery:
    endpoint_id: int
    event_id: int | None
    event_type: str
    member_id: str | None
    occurred_at: datetime


def _endpoint(row: Any) -> EndpointRecord:
    return EndpointRecord(
        int(row.id),
        row.partner,
        row.url,
        tuple(row.event_types),
        bool(row.enabled),
        row.created_at,
        row.updated_at,
        row.failing_since,
        row.disabled_reason,
    )


def delivery_of(row: Any) -> DeliveryRecord:
    return DeliveryRecord(
        int(row.id),
        int(row.endpoint_id),
        row.message_id,
        row.event_id,
        row.event_type,
        row.member_id,
        row.occurred_at,
        row.status,
        int(row.attempts),
        row.created_at,
        row.next_attempt_at,
        row.retries_from,
        row.finished_at,
        row.line_id,
    )


_ENDPOINT_COLUMNS = [c for c in webhook_endpoints.c if c.name not in secrets.COLUMNS]

# Endpoints


ENDPOINTS_LOCK = 727278  # pg_advisory_xact_lock class of a partner's endpoints (objid: CRC)


async def lock_endpoints(connection: AsyncConnection, partner: str) -> None:
    """Serialise adding endpoints of ``partner`` until the transaction ends (so that two at
    once both see the other's in the count). SQLite: take the single writer's lock now."""
    if connection.dialect.name == "postgresql":
        await connection.execute(
            sa.select(sa.func.pg_advisory_xact_lock(ENDPOINTS_LOCK, lock_key(partner)))
        )
    else:
        await connection.execute(sa.delete(webhook_endpoints).where(sa.false()))


async def count_endpoints(connection: AsyncConnection, partner: str) -> int:
    statement = sa.select(sa.func.count()).where(webhook_endpoints.c.partner == partner)
    return int(await connection.scalar(statement) or 0)


async def add_endpoint(
    connection: AsyncConnection,
    partner: str,
    url: str,
    event_types: Sequence[str],
    enabled: bool,
    now: datetime,
) -> int:
    """A new endpoint, its secret still empty (it is sealed to the id: ``set_secret``)."""
    result = await connection.execute(
        sa.insert(webhook_endpoints)
        .values(
            partner=partner,
            url=url,
            event_types=list(event_types),
            enabled=enabled,
            secret="",
            created_at=now,
            updated_at=now,
        )
        .returning(webhook_endpoints.c.id)
    )
    return int(result.scalar_one())


async def endpoint(connection: AsyncConnection, endpoint_id: int) -> EndpointRecord | None:
    row = (
        await connection.execute(
            sa.select(*_ENDPOINT_COLUMNS).where(webhook_endpoints.c.id == endpoint_id)
        )
    ).first()
    return None if row is None else _endpoint(row)


async def endpoints(connection: AsyncConnection, partner: str | None) -> list[EndpointRecord]:
    statement = sa.select(*_ENDPOINT_COLUMNS).order_by(webhook_endpoints.c.id)
    if partner is not None:
        statement = statement.where(webhook_endpoints.c.partner == partner)
    return [_endpoint(row) for row in await connection.execute(statement)]


async def enabled_endpoints(connection: AsyncConnection) -> list[EndpointRecord]:
    statement = (
        sa.select(*_ENDPOINT_COLUMNS)
        .where(webhook_endpoints.c.enabled.is_(True))
        .order_by(webhook_endpoints.c.id)
    )
    return [_endpoint(row) for row in await connection.execute(statement)]


async def update_endpoint(
    connection: AsyncConnection, endpoint_id: int, now: datetime, **values: Any
) -> None:
    if "event_types" in values:
        values["event_types"] = list(values["event_types"])
    await connection.execute(
        sa.update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(updated_at=now, **values)
    )


async def delete_endpoint(connection: AsyncConnection, endpoint_id: int) -> None:
    """The endpoint with its deliveries and their attempts."""
    deliveries = sa.select(webhook_deliveries.c.id).where(
        webhook_deliveries.c.endpoint_id == endpoint_id
    )
    await connection.execute(
        sa.delete(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(deliveries))
    )
    await connection.execute(
        sa.delete(webhook_deliveries).where(webhook_deliveries.c.endpoint_id == endpoint_id)
    )
    await connection.execute(
        sa.delete(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
    )


# Deliveries


LINE_CHUNK = 500  # (endpoint, member) pairs per lookup, deliveries per INSERT


async def add_deliveries(
    connection: AsyncConnection, new: Sequence[NewDelivery], now: datetime
) -> list[int]:
    """New pending deliveries, in order, due now; one whose member's line at the endpoint
    has a delivery pending (in the table or earlier in ``new``) waits (no due time) until
    the line's earlier ones are finished (``queue.record``). Their ids, in order.

    The lines' pending deliveries are locked first: one finishing meanwhile either is seen
    as finished here or, once this commits, sees the new one when it wakes the next. A few
    statements per batch, whatever its size."""
    d = webhook_deliveries
    pairs = sorted({(x.endpoint_id, x.member_id) for x in new if x.member_id is not None})
    lined_up: set[tuple[int, str]] = set()
    for start in range(0, len(pairs), LINE_CHUNK):
        chunk = pairs[start : start + LINE_CHUNK]
        found = await connection.execute(
            sa.select(d.c.endpoint_id, d.c.line_id)
            .where(
                d.c.status == PENDING,
                sa.tuple_(d.c.endpoint_id, d.c.line_id).in_(chunk),
            )
            .with_for_update()
        )
        lined_up.update((int(row.endpoint_id), row.line_id) for row in found)
    rows: list[dict[str, Any]] = []
    for delivery in new:
        waiting = False
        if delivery.member_id is not None:
            line = (delivery.endpoint_id, delivery.member_id)
            waiting = line in lined_up
            lined_up.add(line)
        rows.append(
            {
                "endpoint_id": delivery.endpoint_id,
                "message_id": "msg_" + uuid.uuid4().hex,
                "event_id": delivery.event_id,
                "event_type": delivery.event_type,
                "member_id": delivery.member_id,
                "line_id": delivery.member_id,
                "occurred_at": delivery.occurred_at,
                "status": PENDING,
                "attempts": 0,
                "created_at": now,
                "retries_from": now,
                "next_attempt_at": None if waiting else now,
            }
        )
    ids: list[int] = []
    # The ids follow the rows' order (a member's line at an endpoint is in id order).
    insert = sa.insert(d).returning(d.c.id, sort_by_parameter_order=True)
    for start in range(0, len(rows), LINE_CHUNK):
        result = await connection.execute(insert, rows[start : start + LINE_CHUNK])
        ids += [int(row.id) for row in result]
    return ids


async def join_lines(connection: AsyncConnection, retired: str, survivor: str) -> int:
    """A merge: the retired member's pending deliveries, at every endpoint, join the
    survivor's line where they stand (by id, that is by event), so that nothing later about
    the survivor, the merge first, overtakes them. How many moved.

    Each line keeps one due delivery, so the joined line has one per line joined; only its
    first is sent (``queue``), and each finished one wakes the line's next waiting one, so
    the first pending is always among the due ones."""
    d = webhook_deliveries
    # The endpoints (a few) as values: each a lookup in the ordering index.
    endpoints = list((await connection.execute(sa.select(webhook_endpoints.c.id))).scalars())
    if not endpoints:
        return 0
    result = await connection.execute(
        sa.update(d)
        .where(d.c.endpoint_id.in_(endpoints), d.c.line_id == retired, d.c.status == PENDING)
        .values(line_id=survivor)
        .returning(d.c.id)
    )
    return len(result.all())


async def pending_tests(connection: AsyncConnection, endpoint_id: int) -> int:
    """How many test deliveries (no event) are pending at the endpoint."""
    d = webhook_deliveries
    statement = (
        sa.select(sa.func.count())
        .select_from(d)
        .where(d.c.endpoint_id == endpoint_id, d.c.event_id.is_(None), d.c.status == PENDING)
    )
    return int((await connection.execute(statement)).scalar_one())


async def delivery(connection: AsyncConnection, delivery_id: int) -> DeliveryRecord | None:
    row = (
        await connection.execute(
            sa.select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)
        )
    ).first()
    return None if row is None else delivery_of(row)


async def deliveries(
    connection: AsyncConnection,
    endpoint_id: int,
    status: str | None,
    before: int | None,
    limit: int,
) -> list[DeliveryRecord]:
    """An endpoint's deliveries, newest first, with ids below ``before`` if given."""
    statement = (
        sa.select(webhook_deliveries)
        .where(webhook_deliveries.c.endpoint_id == endpoint_id)
        .order_by(webhook_deliveries.c.id.desc())
        .limit(limit)
    )
    if status is not None:
        statement = statement.where(webhook_deliveries.c.status == status)
    if before is not None:
        statement = statement.where(webhook_deliveries.c.id < before)
    return [delivery_of(row) for row in await connection.execute(statement)]


async def attempts_of(
    connection: AsyncConnection, delivery_ids: Sequence[int]
) -> dict[int, list[AttemptRecord]]:
    found: dict[int, list[AttemptRecord]] = defaultdict(list)
    if not delivery_ids:
        return found
    result = await connection.execute(
        sa.select(webhook_attempts)
        .where(webhook_attempts.c.delivery_id.in_(list(delivery_ids)))
        .order_by(webhook_attempts.c.id)
    )
    for row in result:
        found[int(row.delivery_id)].append(
            AttemptRecord(
                int(row.id),
                int(row.delivery_id),
                row.attempted_at,
                row.status_code,
                row.response,
                row.error,
                int(row.duration_ms),
            )
        )
    return found


async def requeue(connection: AsyncConnection, delivery_id: int, now: datetime) -> bool:
    """Send a finished delivery again now, with a fresh schedule and a day of retries (its
    attempts stay listed; the ``webhook-id`` stays). False for a pending one (being sent
    or to be sent): left as it is."""
    d = webhook_deliveries
    result = await connection.execute(
        sa.update(d)
        .where(d.c.id == delivery_id, d.c.status != PENDING)
        .values(
            status=PENDING,
            attempts=0,
            retries_from=now,
            next_attempt_at=now,
            finished_at=None,
            lease_until=None,
        )
        .returning(d.c.id)
    )
    return result.first() is not None
