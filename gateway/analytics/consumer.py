"""The consumer that keeps the daily aggregates (``analytics.daily``).

It reads the event log once, from its beginning (so the history before it existed is
aggregated the first time it runs), and adds each batch's figures in the transaction that
advances its position: every event counts exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.analytics import store
from gateway.analytics.rules import fold
from gateway.events.event import Event


class DailyAggregates:
    """``Consumer`` (gateway/events/event.py) of the analytics."""

    name = "analytics.daily"
    # A batch costs a few statements however many events it holds.
    batch_size = 2000

    async def apply(self, connection: AsyncConnection, events: Sequence[Event]) -> None:
        await store.add(connection, fold(events))
