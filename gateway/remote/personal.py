"""Remote pools' side of data rights (gateway.privacy): an erased member's remote
operations keep their points and amounts (they are the trail of what the gateway asked a
partner's own system to do) but lose the customer id, the caller's key and the request's
fingerprint. The points a partner keeps in its own system are that partner's to erase: the
gateway cannot move them."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.remote.record import PENDING
from gateway.remote.tables import remote_operations


async def scrub_operations(
    connection: AsyncConnection, member_ids: Sequence[str], prefix: str
) -> None:
    stamp = f"{prefix}{secrets.token_hex(6)}:"
    await connection.execute(
        sa.update(remote_operations)
        .where(
            remote_operations.c.member_id.in_(member_ids),
            remote_operations.c.customer_id.not_like(f"{prefix}%"),
        )
        .values(
            customer_id=sa.literal(stamp) + remote_operations.c.id,
            idempotency_key=sa.literal(stamp) + remote_operations.c.id,
            # A hash of a request naming the customer id: brute-forced back from a few tries.
            request_hash=prefix + secrets.token_hex(28),
        )
    )


async def partners_of(connection: AsyncConnection, member_ids: Sequence[str]) -> set[str]:
    """The partners the gateway ever asked to move the members' points."""
    result = await connection.execute(
        sa.select(remote_operations.c.remote_partner)
        .where(remote_operations.c.member_id.in_(member_ids))
        .distinct()
    )
    return {str(row.remote_partner) for row in result}


async def pending_at(connection: AsyncConnection, member_ids: Sequence[str]) -> list[str]:
    """The partners where an operation of the members is still pending (its outcome not
    known yet): erasure waits for them, for their outcome still moves the member's points."""
    result = await connection.execute(
        sa.select(remote_operations.c.remote_partner)
        .where(remote_operations.c.member_id.in_(member_ids), remote_operations.c.status == PENDING)
        .distinct()
    )
    return sorted(str(row.remote_partner) for row in result)
