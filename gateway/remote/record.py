"""The remote operation's record: its row, statuses and retry pacing, and its store queries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.kernel.errors import DomainError, ErrorCode
from gateway.ledger import store as repository
from gateway.remote.tables import remote_operations

PENDING, COMPLETED, FAILED, COMPENSATED = "pending", "completed", "failed", "compensated"
FIRST_RETRY = timedelta(seconds=15)  # a caller's own retry usually comes sooner
MAX_RETRY = timedelta(hours=1)


@dataclass(frozen=True)
class Operation:
    id: str
    kind: str
    status: str
    member_id: str
    partner: str
    to_partner: str | None
    remote_partner: str
    customer_id: str
    movement: str
    remote_points: int
    points: int
    received_points: int | None
    rate: str | None
    fee: int | None
    purchase_amount: str | None
    reason: str | None
    idempotency_scope: str
    idempotency_key: str
    request_hash: str
    remote_key: str
    remote_transaction_id: str | None
    transfer_id: int | None
    compensation_id: int | None
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Operation:
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})


async def live_operation(connection: AsyncConnection, scope: str, key: str) -> Operation | None:
    row = (
        await connection.execute(
            sa.select(remote_operations)
            .where(remote_operations.c.idempotency_scope == scope)
            .where(remote_operations.c.idempotency_key == key)
            .where(remote_operations.c.status != FAILED)
        )
    ).first()
    return None if row is None else Operation.from_row(row)


async def customer_of(connection: AsyncConnection, member_id: str, partner: str) -> str:
    found = await repository.enrolments_of(connection, [member_id])
    for enrolment in found.get(member_id, []):
        if enrolment.partner == partner:
            return enrolment.customer_id
    raise DomainError(
        ErrorCode.UNKNOWN_MEMBER,
        f"The member is not enrolled at '{partner}', which keeps its points in its own "
        "system: enrol them there with their customer id first.",
        ("member",),
    )


def operations_summary(operations: Sequence[Operation]) -> list[str]:
    """One line per operation, for the CLI."""
    return [
        f"{o.id}  {o.status:<11} {o.kind:<10} {o.partner}->{o.to_partner or o.partner}  "
        f"{o.points:>10}  attempts {o.attempts}  {o.last_error or ''}".rstrip()
        for o in operations
    ]
