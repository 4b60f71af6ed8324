"""Resuming: the job that drives pending operations again, and the operations' listing."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.kernel.errors import DomainError, ErrorCode
from gateway.remote.record import COMPENSATED, COMPLETED, FAILED, PENDING, Operation
from gateway.remote.running import Running
from gateway.remote.tables import remote_operations

log = logging.getLogger("gateway.remote.operations")


class Resuming(Running):
    """The resuming part of the remote operations."""

    async def resume_due(
        self, limit: int = 100, partners: Sequence[str] | None = None
    ) -> dict[str, int]:
        """Drive every pending operation whose retry is due; how each one ended now.

        Safe to run twice or from several workers at once: the remote step is sent with the
        operation's key, and each outcome is recorded by a conditional update. ``partners``
        limits it to operations at those partners.
        """
        now = self.ledger.clock()

        async def due(connection: AsyncConnection) -> list[Operation]:
            query = (
                sa.select(remote_operations)
                .where(remote_operations.c.status == PENDING)
                .where(remote_operations.c.next_attempt_at <= now)
            )
            if partners is not None:
                query = query.where(remote_operations.c.remote_partner.in_(partners))
            result = await connection.execute(
                query.order_by(remote_operations.c.next_attempt_at).limit(limit)
            )
            return [Operation.from_row(row) for row in result]

        counts = {COMPLETED: 0, FAILED: 0, COMPENSATED: 0, PENDING: 0}
        for operation in await self.ledger.uow.read(due):
            try:
                await self.drive(operation)
                counts[COMPLETED] += 1
            except DomainError as error:
                if error.code is ErrorCode.PARTNER_UNAVAILABLE:
                    counts[PENDING] += 1
                elif operation.transfer_id is not None:
                    counts[COMPENSATED] += 1
                else:
                    counts[FAILED] += 1
            except Exception:
                log.exception("remote operation %s could not be driven", operation.id)
                counts[PENDING] += 1
        return counts

    async def operations(
        self,
        status: str | None = None,
        member_id: str | None = None,
        limit: int = 100,
        partners: Sequence[str] | None = None,
    ) -> list[Operation]:
        async def work(connection: AsyncConnection) -> list[Operation]:
            query = sa.select(remote_operations)
            if partners is not None:
                query = query.where(remote_operations.c.remote_partner.in_(partners))
            if status is not None:
                query = query.where(remote_operations.c.status == status)
            if member_id is not None:
                query = query.where(remote_operations.c.member_id == member_id)
            query = query.order_by(remote_operations.c.created_at.desc()).limit(limit)
            return [Operation.from_row(row) for row in await connection.execute(query)]

        return await self.ledger.uow.read(work)
