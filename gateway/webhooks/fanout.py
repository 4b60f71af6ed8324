"""The consumer ``webhooks.fanout``: one delivery per event and enabled endpoint subscribed
to its type whose partner the event concerns.

Which partners an event concerns: its pool, and for a conversion (or its reversal) also the
pool it went to (``data.to_partner``); a merge that moved no points (no pool) the partners
the surviving member is enrolled at; ``settlement.closed`` and ``configuration.changed``
every partner (both are coalition-wide, and their payloads carry nothing of one partner).
An endpoint gets the events that occurred from its registration on. Deliveries are added in
event order, in the consumer's own transaction: once per event. A merge moves the retired
member's pending deliveries into the survivor's line first (``store.join_lines``): order per
member holds across merges.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.events import types
from gateway.events.event import Event
from gateway.ledger import store as ledger_store
from gateway.webhooks import store
from gateway.webhooks.store import NewDelivery

EVERY_PARTNER = frozenset({types.SETTLEMENT_CLOSED, types.CONFIGURATION_CHANGED})


async def concerned(connection: AsyncConnection, event: Event) -> set[str] | None:
    """The partners ``event`` concerns (None: all of them)."""
    if event.type in EVERY_PARTNER:
        return None
    partners = {event.partner} if event.partner else set()
    to_partner = event.data.get("to_partner")
    if isinstance(to_partner, str):
        partners.add(to_partner)
    if event.type == types.MEMBER_MERGED and not partners and event.member_id:
        enrolled = await ledger_store.enrolments_of(connection, [event.member_id])
        partners = {record.partner for record in enrolled.get(event.member_id, [])}
    return partners


class WebhookFanout:
    name = "webhooks.fanout"
    batch_size = 500

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock

    async def apply(self, connection: AsyncConnection, events: Sequence[Event]) -> None:
        endpoints = await store.enabled_endpoints(connection)
        new: list[NewDelivery] = []
        for event in events:
            retired = event.data.get("retired")
            if event.type == types.MEMBER_MERGED and isinstance(retired, str) and event.member_id:
                # The deliveries of the events before the merge are made first, so that the
                # retired member's move with the rest of its line, ahead of the merge's own.
                await store.add_deliveries(connection, new, self.clock())
                new = []
                await store.join_lines(connection, retired, event.member_id)
            listening = [
                e
                for e in endpoints
                if event.type in e.event_types and e.created_at <= event.occurred_at
            ]
            if not listening:
                continue
            partners = await concerned(connection, event)
            new += [
                NewDelivery(
                    endpoint.id,
                    event.position.sequence,
                    event.type,
                    event.member_id,
                    event.occurred_at,
                )
                for endpoint in listening
                if partners is None or endpoint.partner in partners
            ]
        await store.add_deliveries(connection, new, self.clock())
