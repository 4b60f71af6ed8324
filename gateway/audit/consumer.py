"""``audit.events``: one audit entry per domain event, written in the transaction that
advances the consumer's position, so each event is recorded exactly once."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit import store
from gateway.audit.entries import from_event
from gateway.events.event import Event


class AuditEvents:
    name = "audit.events"
    batch_size = 500

    async def apply(self, connection: AsyncConnection, events: Sequence[Event]) -> None:
        await store.append_many(connection, [from_event(event) for event in events])
