"""Appending events: one INSERT in the caller's transaction, so an event exists exactly when
the posting it records committed (a failed posting rolls it back; a replay appends none).

The hooks call ``append`` with an event built here (a transfer's, in
``gateway.ledger.transfer_events``), one line next to each posting. The
insert sends no transaction id: the column's default fills it in (``tables.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.events import types
from gateway.events.actor import current_actor, current_request
from gateway.events.event import NewEvent
from gateway.events.tables import outbox

_INSERT = sa.insert(outbox)
# Many events on PostgreSQL: one statement of arrays (a batch of postings appends thousands).
_INSERT_MANY = sa.text(
    """
INSERT INTO outbox (type, member_id, partner, transfer_id, points, occurred_at, actor, data,
                    request_id, client_id)
SELECT *, CAST(:request_id AS VARCHAR), CAST(:client_id AS VARCHAR)
FROM unnest(CAST(:types AS VARCHAR[]), CAST(:members AS VARCHAR[]),
            CAST(:partners AS VARCHAR[]), CAST(:transfers AS BIGINT[]),
            CAST(:points AS BIGINT[]), CAST(:ats AS TIMESTAMPTZ[]),
            CAST(:actors AS TEXT[]), CAST(:data AS TEXT[])::json[])
"""
)


async def append(connection: AsyncConnection, events: Sequence[NewEvent]) -> None:
    """Append ``events`` in the connection's transaction (one statement), with the actor,
    request id and client the entry point recorded."""
    if not events:
        return
    actor = current_actor.get()
    trace = current_request.get()
    request_id = client_id = None
    if trace is not None:
        trace.appended += len(events)
        request_id, client_id = trace.request_id, trace.client_id
    if len(events) > 1 and connection.dialect.name == "postgresql":
        await connection.execute(
            _INSERT_MANY,
            {
                "types": [e.type for e in events],
                "members": [e.member_id for e in events],
                "partners": [e.partner for e in events],
                "transfers": [e.transfer_id for e in events],
                "points": [e.points for e in events],
                "ats": [e.occurred_at for e in events],
                "actors": [e.actor if e.actor is not None else actor for e in events],
                "data": [json.dumps(dict(e.data), separators=(",", ":")) for e in events],
                "request_id": request_id,
                "client_id": client_id,
            },
        )
        return
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
            "request_id": request_id,
            "client_id": client_id,
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


def erased(member_id: str, partner: str | None, at: datetime) -> NewEvent:
    """A member's personal data was erased (gateway.privacy): one event per partner that
    heard of them (gateway.privacy.service), so that each can erase what it keeps about the
    member id. No data."""
    return NewEvent(types.MEMBER_ERASED, at, member_id=member_id, partner=partner, data={})


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
