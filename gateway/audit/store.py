"""The only code touching ``audit_entries``: appending and reading. No update, no delete
(the database refuses both, see migration 0020)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.entries import Actor, Entry
from gateway.audit.tables import audit_entries as t

_INSERT = sa.insert(t)


@dataclass(frozen=True)
class Filters:
    member_ids: tuple[str, ...] = ()  # about any of these (a member and those merged into it)
    actor: str | None = None
    actor_kind: str | None = None
    action: str | None = None
    since: datetime | None = None  # occurred at or after
    until: datetime | None = None  # occurred before
    target_kind: str | None = None
    target_id: str | None = None


@dataclass(frozen=True)
class StoredEntry:
    id: int
    entry: Entry


def _row(entry: Entry) -> dict[str, Any]:
    return {
        "occurred_at": entry.occurred_at,
        "actor_kind": entry.actor.kind,
        "actor": entry.actor.id[:200],
        "client_id": entry.actor.client_id,
        "action": entry.action[:64],
        "target_kind": entry.target_kind,
        "target_id": None if entry.target_id is None else entry.target_id[:64],
        "member_id": entry.member_id,
        "partner": entry.partner,
        "outcome": entry.outcome,
        "detail": entry.detail,
        "request_id": entry.request_id,
        "source": entry.source,
        "data": dict(entry.data),
    }


async def append(connection: AsyncConnection, entry: Entry) -> None:
    await connection.execute(_INSERT, _row(entry))


async def append_many(connection: AsyncConnection, entries: Sequence[Entry]) -> None:
    if entries:
        await connection.execute(_INSERT, [_row(entry) for entry in entries])


def _entry(row: Any) -> StoredEntry:
    return StoredEntry(
        row.id,
        Entry(
            occurred_at=row.occurred_at,
            actor=Actor(row.actor_kind, row.actor, row.client_id),
            action=row.action,
            outcome=row.outcome,
            target_kind=row.target_kind,
            target_id=row.target_id,
            member_id=row.member_id,
            partner=row.partner,
            detail=row.detail,
            request_id=row.request_id,
            source=row.source,
            data=row.data or {},
        ),
    )


def _conditions(filters: Filters) -> list[sa.ColumnElement[bool]]:
    found: list[sa.ColumnElement[bool]] = []
    if filters.member_ids:
        found.append(t.c.member_id.in_(filters.member_ids))
    for column, value in (
        (t.c.actor, filters.actor),
        (t.c.actor_kind, filters.actor_kind),
        (t.c.action, filters.action),
        (t.c.target_kind, filters.target_kind),
        (t.c.target_id, filters.target_id),
    ):
        if value is not None:
            found.append(column == value)
    if filters.since is not None:
        found.append(t.c.occurred_at >= filters.since)
    if filters.until is not None:
        found.append(t.c.occurred_at < filters.until)
    return found


async def query(
    connection: AsyncConnection, filters: Filters, after: int | None, limit: int
) -> list[StoredEntry]:
    """Up to ``limit`` entries matching ``filters``, newest (last appended) first, after the
    entry ``after`` (a cursor: its id)."""
    conditions = _conditions(filters)
    if after is not None:
        conditions.append(t.c.id < after)
    statement = sa.select(t).where(*conditions).order_by(t.c.id.desc()).limit(limit)
    return [_entry(row) for row in await connection.execute(statement)]


def as_dict(stored: StoredEntry) -> dict[str, Any]:
    """An entry as JSON-safe values, named as the rest of the member's data export."""
    entry = stored.entry
    return {
        "id": stored.id,
        "occurredAt": entry.occurred_at.isoformat(),
        "actorKind": entry.actor.kind,
        "actor": entry.actor.id,
        "clientId": entry.actor.client_id,
        "action": entry.action,
        "targetKind": entry.target_kind,
        "targetId": entry.target_id,
        "memberId": entry.member_id,
        "partner": entry.partner,
        "outcome": entry.outcome,
        "detail": entry.detail,
        "requestId": entry.request_id,
        "data": dict(entry.data),
    }


async def about_member(
    connection: AsyncConnection, member_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """Every entry about the members ``member_ids`` (a person's: the survivor and those merged
    into it), oldest first, as JSON-safe dicts (data export)."""
    statement = sa.select(t).where(t.c.member_id.in_(list(member_ids))).order_by(t.c.id)
    return [as_dict(_entry(row)) for row in await connection.execute(statement)]


async def made_by(connection: AsyncConnection, transfer_ids: Sequence[int]) -> dict[int, Entry]:
    """Per transfer, the entry of the event that recorded it (the first, for a transfer
    with several events): who made it, and in which request."""
    if not transfer_ids:
        return {}
    statement = (
        sa.select(t)
        .where(
            t.c.target_kind == "transfer",
            t.c.target_id.in_([str(i) for i in transfer_ids]),
            t.c.source == "event",
        )
        .order_by(t.c.id)
    )
    found: dict[int, Entry] = {}
    for row in await connection.execute(statement):
        found.setdefault(int(row.target_id), _entry(row).entry)
    return found
