"""The ledger's side of members' data rights (gateway.privacy): a member's ids, erasure
mark, enrolments and transfers, read in pages for an export and pseudonymised for an
erasure. Only a transfer's idempotency key and a gift's message (its ``reason``) are ever
rewritten (and its request fingerprint randomised); amounts, legs and every other column
stay as they were."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.kernel.validation import ERASED_PREFIX
from gateway.ledger.records import TransferRecord
from gateway.ledger.rules import TransferKind
from gateway.ledger.tables import accounts, enrolments, entries, members, transfers

# What replaces a value erasure removes, before a random token (callers may not use it).
ERASED = ERASED_PREFIX


def is_erased(value: str) -> bool:
    """Whether ``value`` is what an erasure put in place of a personal value."""
    return value.startswith(ERASED)


def token() -> str:
    """A random stand-in for an erased value: not derived from it, so nothing recovers it."""
    return ERASED + secrets.token_urlsafe(12)


def random_hash() -> str:
    """What replaces an erased request's fingerprint: as long as one, derived from nothing."""
    return ERASED + secrets.token_hex(28)


async def member_row(
    connection: AsyncConnection, member_id: str
) -> sa.Row[tuple[object, ...]] | None:
    result = await connection.execute(sa.select(members).where(members.c.id == member_id))
    return result.first()


async def member_ids(connection: AsyncConnection, member_id: str) -> list[str]:
    """``member_id`` and the ids of the members merged into it."""
    result = await connection.execute(
        sa.select(members.c.id).where(members.c.merged_into == member_id).order_by(members.c.id)
    )
    return [member_id, *(str(row.id) for row in result)]


async def mark_erased(connection: AsyncConnection, member_ids: Sequence[str], at: datetime) -> None:
    await connection.execute(
        sa.update(members)
        .where(members.c.id.in_(member_ids), members.c.erased_at.is_(None))
        .values(erased_at=at)
    )


async def wallet_balances(connection: AsyncConnection, member_id: str) -> dict[str, int]:
    """The member's wallets with points, by pool (the caller holds the member's lock)."""
    result = await connection.execute(
        sa.select(accounts.c.pool, accounts.c.balance)
        .where(accounts.c.member_id == member_id, accounts.c.balance != 0)
        .order_by(accounts.c.pool)
    )
    return {str(row.pool): int(row.balance) for row in result}


async def wallet_pools(connection: AsyncConnection, member_ids: Sequence[str]) -> set[str]:
    """The pools the members have (or had) a wallet in: each heard of them by events."""
    result = await connection.execute(
        sa.select(accounts.c.pool).where(accounts.c.member_id.in_(member_ids)).distinct()
    )
    return {str(row.pool) for row in result}


async def pseudonymise_enrolments(
    connection: AsyncConnection, member_ids: Sequence[str]
) -> dict[tuple[str, str], str]:
    """Replace the members' customer ids by random tokens: (partner, old id) -> token. The
    partner enrolling the same customer id again gets a new member."""
    result = await connection.execute(
        sa.select(enrolments.c.partner, enrolments.c.customer_id).where(
            enrolments.c.member_id.in_(member_ids),
            enrolments.c.customer_id.not_like(f"{ERASED}%"),
        )
    )
    replaced: dict[tuple[str, str], str] = {}
    for row in result.all():
        new = token()
        await connection.execute(
            sa.update(enrolments)
            .where(enrolments.c.partner == row.partner, enrolments.c.customer_id == row.customer_id)
            .values(customer_id=new)
        )
        replaced[(str(row.partner), str(row.customer_id))] = new
    return replaced


async def clear_gift_messages(connection: AsyncConnection, member_ids: Sequence[str]) -> list[int]:
    """Clear the messages (a gift's ``reason``: a member's own words) of the gifts the
    members gave or received; the ids of those gifts. Migration 0022 leaves ``reason``
    writable for this."""
    received = sa.select(entries.c.transfer_id).where(entries.c.member_id.in_(member_ids))
    result = await connection.execute(
        sa.update(transfers)
        .where(
            transfers.c.kind == TransferKind.GIFT.value,
            transfers.c.reason.isnot(None),
            sa.or_(transfers.c.member_id.in_(member_ids), transfers.c.id.in_(received)),
        )
        .values(reason=None)
        .returning(transfers.c.id)
    )
    return sorted(int(row.id) for row in result)


async def earn_keys(connection: AsyncConnection, member_ids: Sequence[str]) -> dict[str, set[str]]:
    """The callers' keys of the members' earns, per partner (before ``rekey_transfers``)."""
    result = await connection.execute(
        sa.select(transfers.c.partner, transfers.c.idempotency_key).where(
            transfers.c.member_id.in_(member_ids),
            transfers.c.idempotency_scope.like("earn:%"),
            transfers.c.idempotency_key.not_like(f"{ERASED}%"),
        )
    )
    found: dict[str, set[str]] = {}
    for row in result:
        found.setdefault(str(row.partner), set()).add(str(row.idempotency_key))
    return found


async def rekey_transfers(connection: AsyncConnection, member_ids: Sequence[str]) -> int:
    """Replace the callers' idempotency keys (often receipt numbers) of the members'
    transfers by ``erased:<random>:<transfer id>``: unique, and saying nothing of the key;
    and their request fingerprints (a SHA-256 of a request naming the customer id, found
    back by trying the few likely ids) by a random value. Migration 0022 leaves these two
    columns, and a gift's message, writable."""
    prefix = f"{ERASED}{secrets.token_hex(6)}:"
    result = await connection.execute(
        sa.update(transfers)
        .where(
            transfers.c.member_id.in_(member_ids),
            transfers.c.idempotency_key.not_like(f"{ERASED}%"),
        )
        .values(
            idempotency_key=sa.literal(prefix) + sa.cast(transfers.c.id, sa.String),
            request_hash=random_hash(),
        )
    )
    return int(result.rowcount or 0)


async def transfers_page(
    connection: AsyncConnection, member_ids: Sequence[str], after: int, limit: int
) -> list[TransferRecord]:
    """The members' transfers after transfer ``after``, oldest first, at most ``limit``:
    their own, and those that moved points into or out of their wallets (a gift received).
    Each side is read by its index and limited on its own, then merged (as
    ``store.member_history`` does, the other way round)."""
    own = (
        sa.select(transfers.c.id.label("id"))
        .where(transfers.c.member_id.in_(member_ids), transfers.c.id > after)
        .order_by(transfers.c.id)
        .limit(limit)
        .subquery()
    )
    touching = (
        sa.select(entries.c.transfer_id.label("id"))
        .distinct()  # a transfer may have several legs in the members' wallets
        .where(entries.c.member_id.in_(member_ids), entries.c.transfer_id > after)
        .order_by(entries.c.transfer_id)
        .limit(limit)
        .subquery()
    )
    both = sa.union(sa.select(own.c.id), sa.select(touching.c.id)).subquery()
    ids = sa.select(both.c.id).order_by(both.c.id).limit(limit)
    result = await connection.execute(
        sa.select(transfers).where(transfers.c.id.in_(ids)).order_by(transfers.c.id)
    )
    return [TransferRecord.from_row(row) for row in result]
