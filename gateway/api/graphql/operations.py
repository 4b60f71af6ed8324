"""The gateway's background work as the database tells it, for operators: event consumers'
lag, remote operations still pending at partners that keep their own points, and the latest
import jobs. What a process only keeps in memory (a sweep's last run, per-process metrics) is
not here: see ``/metrics``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.api import jobs
from gateway.api.graphql.context import Info
from gateway.api.graphql.imports import EarnImport
from gateway.api.graphql.scalars import Int64
from gateway.events.followers import backlog
from gateway.imports.store import UPLOADING, ImportRecord
from gateway.imports.tables import imports
from gateway.remote.record import PENDING, Operation
from gateway.remote.tables import remote_operations

MAX_ROWS = 100


@strawberry.type(description="An event consumer against the event log.")
class ConsumerLag:
    name: str
    lag_events: Int64 = strawberry.field(
        description="Events appended after its position (approximate on PostgreSQL)."
    )
    lag_seconds: float = strawberry.field(
        description="How long the oldest event it has still to apply has waited (0: none)."
    )
    oldest_waiting_at: datetime | None = strawberry.field(
        description="When that event occurred; null when the consumer is up to date."
    )


@strawberry.type(description="A posting at a partner's own system whose outcome is not known.")
class PendingRemoteOperation:
    operation: strawberry.Private[Operation]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.operation.id)

    @strawberry.field(description="earn, redeem or conversion.")
    def kind(self) -> str:
        return self.operation.kind

    @strawberry.field(description="The partner whose own system is asked.")
    def remote_partner(self) -> str:
        return self.operation.remote_partner

    @strawberry.field(description="Points at the remote partner.")
    def remote_points(self) -> Int64:
        return self.operation.remote_points

    @strawberry.field
    def attempts(self) -> int:
        return self.operation.attempts

    @strawberry.field(description="Why the last attempt did not settle it.")
    def last_error(self) -> str | None:
        return self.operation.last_error

    @strawberry.field(description="When the last attempt was made (or the operation created).")
    def last_attempt_at(self) -> datetime:
        return self.operation.updated_at

    @strawberry.field(description="When the gateway tries again.")
    def next_attempt_at(self) -> datetime:
        return self.operation.next_attempt_at

    @strawberry.field
    def created_at(self) -> datetime:
        return self.operation.created_at


@strawberry.type(description="An import job and when it last moved.")
class ImportRun:
    job: EarnImport
    updated_at: datetime = strawberry.field(description="Its last checkpoint or change.")


@strawberry.type(description="Remote operations by status.")
class RemoteStatusCount:
    status: str
    count: Int64


@strawberry.type(description="Background work, as the database tells it (operators).")
class Operations:
    checked_at: datetime
    consumers: list[ConsumerLag]
    remote_operations: list[RemoteStatusCount] = strawberry.field(
        description="How many remote operations are in each status."
    )
    pending_remote_operations: list[PendingRemoteOperation] = strawberry.field(
        description="Pending remote operations, the longest waiting first."
    )
    imports: list[ImportRun] = strawberry.field(description="Import jobs, the latest moved first.")


@dataclass
class _Read:
    consumers: list[ConsumerLag]
    counts: list[RemoteStatusCount]
    pending: list[PendingRemoteOperation]
    imports: list[ImportRun]


@strawberry.type
class OperationsQueries:
    @strawberry.field(
        description=(
            "Consumers' lag, pending remote operations and import jobs (operators). "
            f"`first`: at most {MAX_ROWS} pending operations and imports."
        )
    )
    async def operations(self, info: Info, first: int = 20) -> Operations:
        info.context.access.require_operator()
        limit = max(1, min(first, MAX_ROWS))
        service = info.context.service
        now = service.clock()
        names = [consumer.name for consumer in jobs.consumers(service)]

        async def read(connection: AsyncConnection) -> _Read:
            lags = []
            for name in names:
                behind, oldest = await backlog(connection, name)
                waited = max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
                lags.append(
                    ConsumerLag(
                        name=name, lag_events=behind, lag_seconds=waited, oldest_waiting_at=oldest
                    )
                )
            counted = await connection.execute(
                sa.select(remote_operations.c.status, sa.func.count())
                .group_by(remote_operations.c.status)
                .order_by(remote_operations.c.status)
            )
            pending = await connection.execute(
                sa.select(remote_operations)
                .where(remote_operations.c.status == PENDING)
                .order_by(remote_operations.c.created_at)
                .limit(limit)
            )
            latest = await connection.execute(
                sa.select(imports)
                .where(imports.c.status != UPLOADING)
                .order_by(imports.c.updated_at.desc(), imports.c.id.desc())
                .limit(limit)
            )
            fields = ImportRecord.__dataclass_fields__
            return _Read(
                lags,
                [RemoteStatusCount(status=status, count=int(count)) for status, count in counted],
                [PendingRemoteOperation(operation=Operation.from_row(row)) for row in pending],
                [
                    ImportRun(
                        job=EarnImport(record=ImportRecord(**{f: row._mapping[f] for f in fields})),
                        updated_at=row.updated_at,
                    )
                    for row in latest
                ],
            )

        found = await service.uow.read(read)
        return Operations(
            checked_at=now,
            consumers=found.consumers,
            remote_operations=found.counts,
            pending_remote_operations=found.pending,
            imports=found.imports,
        )
