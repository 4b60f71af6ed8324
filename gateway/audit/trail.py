"""Writing and reading the trail outside a consumer: direct entries from the entry points
(each in its own short transaction) and the queries."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit import store
from gateway.audit.entries import Entry
from gateway.audit.store import Filters, StoredEntry
from gateway.kernel.unit_of_work import UnitOfWork

log = logging.getLogger("gateway.audit")


class AuditTrail:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    async def record(self, entry: Entry) -> None:
        """Append ``entry`` in a transaction of its own. The action it records has happened
        (or was refused) already: a failure here is logged, never raised to the caller."""

        async def work(connection: AsyncConnection) -> None:
            await store.append(connection, entry)

        try:
            await self.uow.write(work)
        except Exception:
            log.exception("audit entry %s by %s not recorded", entry.action, entry.actor.id)

    async def query(self, filters: Filters, after: int | None, limit: int) -> list[StoredEntry]:
        async def work(connection: AsyncConnection) -> list[StoredEntry]:
            return await store.query(connection, filters, after, limit)

        return await self.uow.read(work)

    async def made_by(self, transfer_ids: Sequence[int]) -> dict[int, Entry]:
        async def work(connection: AsyncConnection) -> dict[int, Entry]:
            return await store.made_by(connection, transfer_ids)

        return await self.uow.read(work)

    async def about_member(self, member_ids: Sequence[str]) -> list[dict[str, Any]]:
        async def work(connection: AsyncConnection) -> list[dict[str, Any]]:
            return await store.about_member(connection, member_ids)

        return await self.uow.read(work)
