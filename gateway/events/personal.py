"""The event log's side of data rights (gateway.privacy): the only personal value an event
carries is a ``member.enrolled`` event's ``customer_id``; erasure replaces it with the
token that replaced the enrolment's. Everything else in the outbox is ids and figures."""

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
