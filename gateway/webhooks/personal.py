"""Webhooks' side of data rights (gateway.privacy): an attempt keeps the first 2 KB of the
receiver's answer and the error met, and receivers often echo the payload they got (a
customer id, a receipt); an erasure clears both for the deliveries about the member. The
deliveries themselves (event type, member id, times, status codes) stay: they name no one."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.webhooks.tables import webhook_attempts, webhook_deliveries


async def clear_answers(connection: AsyncConnection, member_ids: Sequence[str]) -> int:
    """Clear the answers and errors of the attempts of the members' deliveries; how many."""
    theirs = sa.select(webhook_deliveries.c.id).where(
        webhook_deliveries.c.member_id.in_(member_ids)
    )
    result = await connection.execute(
        sa.update(webhook_attempts)
        .where(
            webhook_attempts.c.delivery_id.in_(theirs),
            sa.or_(webhook_attempts.c.response.isnot(None), webhook_attempts.c.error.isnot(None)),
        )
        .values(response=None, error=None)
    )
    return int(result.rowcount or 0)
