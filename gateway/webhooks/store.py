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
    first_attempt_at: datetime | None
    finished_at: datetime | None


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
        row.first_attempt_at,
        row.finished_at,
    )


_SECRETS = ("secret", "previous_secret")
_ENDPOINT_COLUMNS = [c for c in webhook_endpoints.c if c.name not in _SECRETS]

# Endpoints


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


async def set_secret(connection: AsyncConnection, endpoint_id: int, sealed: str) -> None:
    await connection.execute(
        sa.update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(secret=sealed)
    )


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
        for column in _SECRETS:
            if getattr(row, column):
                key = f"{int(row.id)}:{column}"
                found.append((key, secret_context(int(row.id)), getattr(row, column)))
    return found


async def replace_sealed(connection: AsyncConnection, key: str, was: str, sealed: str) -> bool:
    """Store ``sealed`` (the same secret, re-wrapped) at ``key`` if it still holds ``was``
    (False when the secret changed meanwhile: a rotation)."""
    endpoint, _, column = key.partition(":")
    if column not in _SECRETS or not endpoint.isdigit():
        raise ValueError(f"not a webhook secret: {key!r}")
    result = await connection.execute(
        sa.update(webhook_endpoints)
        .where(webhook_endpoints.c.id == int(endpoint), webhook_endpoints.c[column] == was)
        .values({column: sealed})
    )
    return result.rowcount == 1


# Deliveries


async def add_deliveries(
    connection: AsyncConnection, new: Sequence[NewDelivery], now: datetime
) -> list[int]:
    ids: list[int] = []
    for delivery in new:  # one by one: the ids, in order, for ordering per member
        result = await connection.execute(
            sa.insert(webhook_deliveries)
            .values(
                endpoint_id=delivery.endpoint_id,
                message_id="msg_" + uuid.uuid4().hex,
                event_id=delivery.event_id,
                event_type=delivery.event_type,
                member_id=delivery.member_id,
                occurred_at=delivery.occurred_at,
                status=PENDING,
                attempts=0,
                created_at=now,
                next_attempt_at=now,
            )
            .returning(webhook_deliveries.c.id)
        )
        ids.append(int(result.scalar_one()))
    return ids


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


async def requeue(connection: AsyncConnection, delivery_id: int, now: datetime) -> None:
    """Send again now, with a fresh day of retries; the ``webhook-id`` stays."""
    await connection.execute(
        sa.update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id)
        .values(
            status=PENDING,
            next_attempt_at=now,
            first_attempt_at=None,
            finished_at=None,
            lease_until=None,
        )
    )
