"""The shape of a domain event and of its consumers (stable: webhooks and audit read it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True, order=True)
class Position:
    """An event's place in the log. On PostgreSQL ``transaction`` is the appending
    transaction's id (xid8) and ``sequence`` the row's id; on SQLite, where one writer
    commits at a time, ``transaction`` is 0. Consumers resume after the last they applied."""

    transaction: int
    sequence: int


START = Position(0, 0)


@dataclass(frozen=True)
class Event:
    position: Position
    type: str  # "points.earned", "points.redeemed", ... (see the README's event list)
    member_id: str | None  # the member whose points moved (the survivor at posting time)
    partner: str | None  # the pool the event is about
    transfer_id: int | None  # the ledger transfer it records, if any
    points: int | None  # the transfer's points, positive; the type says which way
    occurred_at: datetime  # UTC
    actor: str | None  # "partner:<slug>", "member:<id>", "operator:<sub>", "system:<job>"
    data: Mapping[str, Any] = field(default_factory=dict)  # type-specific, JSON-safe
    request_id: str | None = None  # the HTTP request that appended it, if any
    client_id: str | None = None  # the OAuth client that called (partner app, operator client)


class Consumer(Protocol):
    """Follows the log. ``apply`` runs in one transaction with the advance of the
    consumer's stored position: effects it writes there happen once per event. A consumer
    may declare an int ``batch_size``: the most events it takes per ``apply`` (else the
    runner's default)."""

    @property
    def name(self) -> str: ...

    async def apply(self, connection: AsyncConnection, events: Sequence[Event]) -> None: ...


@dataclass(frozen=True)
class NewEvent:
    """An event to append: the log gives it its position when its transaction commits.
    ``actor`` None: the caller the entry point recorded (``gateway.events.actor``)."""

    type: str
    occurred_at: datetime
    member_id: str | None = None
    partner: str | None = None
    transfer_id: int | None = None
    points: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    actor: str | None = None


def batch_size(consumer: Consumer, default: int) -> int:
    """The most events ``consumer`` takes per ``apply``: its own ``batch_size`` if it
    declares one, else ``default``."""
    declared = getattr(consumer, "batch_size", None)
    return declared if isinstance(declared, int) and declared > 0 else default
