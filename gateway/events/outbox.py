"""Appending events: one INSERT in the caller's transaction, so an event exists exactly when
the posting it records committed (a failed posting rolls it back; a replay appends none).

The hooks call ``append`` with an event built here, one line next to each posting. The
insert sends no transaction id: the column's default fills it in (``tables.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ..records import TransferRecord
from . import types
from .actor import current_actor
from .event import NewEvent
from .tables import outbox

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


def posted(transfer: TransferRecord, extra: Mapping[str, Any] | None = None) -> NewEvent:
    """The event recording a ledger transfer; ``extra`` adds to its data (e.g. what a
    reversal reverses)."""
    data: dict[str, Any] = {"kind": transfer.kind.value}
    if transfer.reason is not None:
        data["reason"] = transfer.reason
    if transfer.to_partner is not None:
        data["to_partner"] = transfer.to_partner
    if transfer.received_points is not None:
        data["received_points"] = transfer.received_points
    if transfer.fee is not None:
        data["fee"] = transfer.fee
    if transfer.rate is not None:
        data["rate"] = str(transfer.rate)
    if transfer.purchase_amount is not None:
        data["purchase_amount"] = str(transfer.purchase_amount)
    if transfer.reverses_id is not None:
        data["reverses_id"] = transfer.reverses_id
    if extra:
        data.update(extra)
    return NewEvent(
        type=types.BY_TRANSFER_KIND[transfer.kind.value],
        occurred_at=transfer.created_at,
        member_id=transfer.member_id,
        partner=transfer.partner,
        transfer_id=transfer.id,
        points=transfer.points,
        data=data,
    )


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
