"""The event log's side of data rights (gateway.privacy): the personal values an event
carries are a ``member.enrolled`` event's ``customer_id``, which erasure replaces with the
token that replaced the enrolment's, and a ``points.gifted`` event's ``reason`` (the
gift's message), which it removes. Everything else in the outbox is ids and figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.events import types
from gateway.events.tables import outbox


async def replace_customer_ids(
    connection: AsyncConnection,
    member_ids: Sequence[str],
    replaced: Mapping[tuple[str, str], str],
    fallback: str,
) -> None:
    """In the members' enrolment events: (partner, customer id) -> its token; a customer id
    erased earlier (or otherwise unknown) becomes ``fallback``."""
    result = await connection.execute(
        sa.select(outbox.c.id, outbox.c.partner, outbox.c.data).where(
            outbox.c.member_id.in_(member_ids), outbox.c.type == types.MEMBER_ENROLLED
        )
    )
    for row in result.all():
        data = dict(row.data or {})
        customer_id = data.get("customer_id")
        if not isinstance(customer_id, str) or customer_id.startswith("erased:"):
            continue
        data["customer_id"] = replaced.get((str(row.partner), customer_id), fallback)
        await connection.execute(sa.update(outbox).where(outbox.c.id == row.id).values(data=data))


async def drop_gift_messages(connection: AsyncConnection, transfer_ids: Sequence[int]) -> None:
    """Remove ``reason`` from the events of these gifts."""
    for start in range(0, len(transfer_ids), 500):
        result = await connection.execute(
            sa.select(outbox.c.id, outbox.c.data).where(
                outbox.c.transfer_id.in_(transfer_ids[start : start + 500]),
                outbox.c.type == types.POINTS_GIFTED,
            )
        )
        for row in result.all():
            data = dict(row.data or {})
            if data.pop("reason", None) is not None:
                await connection.execute(
                    sa.update(outbox).where(outbox.c.id == row.id).values(data=data)
                )
