"""Appending events: one INSERT in the caller's transaction, so an event exists exactly when
the posting it records committed (a failed posting rolls it back; a replay appends none).

The hooks call ``append`` with an event built here (a transfer's, in
``gateway.ledger.transfer_events``), one line next to each posting. The
insert sends no transaction id: the column's default fills it in (``tables.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.events import types
from gateway.events.actor import current_actor
from gateway.events.event import NewEvent
from gateway.events.tables import outbox

_INSERT = sa.insert(outbox)


async def append(connection: AsyncConnection, events: Sequence[NewEvent]) -> None:
    """Append ``events`` in the connection's transaction (one statement)."""
    if not events:
        return
    actor = current_actor.get()
    rows = [
        {
            "type": event.type,
            "member_id": event.member_id,
            "partner": event.partner,
            "transfer_id": event.transfer_id,
            "points": event.points,
            "occurred_at": event.occurred_at,
            "actor": event.actor if event.actor is not None else actor,
            "data": dict(event.data),
        }
        for event in events
    ]
    await connection.execute(_INSERT, rows[0] if len(rows) == 1 else rows)


def enrolled(
    member_id: str, partner: str, customer_id: str, at: datetime, via: str = "partner"
) -> NewEvent:
    """A member enrolled at a partner: by the partner's API (``via`` "partner") or by a
    first sign-in or link through the partner's provider ("sign-in")."""
    data = {"customer_id": customer_id, "via": via}
    return NewEvent(types.MEMBER_ENROLLED, at, member_id=member_id, partner=partner, data=data)


def merged(survivor: str, retired: str, at: datetime) -> NewEvent:
    """A merge that moved no points (a merge that did has one event per pool it moved)."""
    return NewEvent(types.MEMBER_MERGED, at, member_id=survivor, data={"retired": retired})


def reward_redeemed(
    member_id: str,
    partner: str,
    transfer_id: int,
    points: int,
    at: datetime,
    data: Mapping[str, Any],
) -> NewEvent:
    """A reward bought: ``transfer_id`` is its redeem transfer (a conversion paying for it,
    if any, has its own points.converted event)."""
    return NewEvent(
        types.REWARD_REDEEMED,
        at,
        member_id=member_id,
        partner=partner,
        transfer_id=transfer_id,
        points=points,
        data=data,
    )


def settlement_closed(at: datetime, data: Mapping[str, Any]) -> NewEvent:
    return NewEvent(types.SETTLEMENT_CLOSED, at, data=data)
