"""SQL for the ledger's members, enrolments, wallets and transfers (the posting's own writes:
posting_sql.py; the member lock: locks.py).

Functions take an open ``AsyncConnection``; the unit of work decides the transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.kernel.schema import insert_for
from gateway.ledger.records import (
    EnrolmentRecord,
    LegRecord,
    MemberRecord,
    TransferRecord,
    WalletRecord,
)
from gateway.ledger.rules import SYSTEM_ACCOUNTS, AccountCode, TransferKind
from gateway.ledger.tables import accounts, enrolments, entries, members, obligations, transfers

# The statements the posting path reads with, built once and bound per call.
_TRANSFER_BY_KEY = sa.select(transfers).where(
    transfers.c.idempotency_scope == sa.bindparam("scope"),
    transfers.c.idempotency_key == sa.bindparam("key"),
)
_ENROLMENT = sa.select(enrolments).where(
    enrolments.c.partner == sa.bindparam("partner"),
    enrolments.c.customer_id == sa.bindparam("customer_id"),
)


async def ensure_system_accounts(
    connection: AsyncConnection, pools: Iterable[str]
) -> dict[tuple[str, AccountCode], int]:
    rows = [
        {"pool": pool, "code": code.value, "balance": 0}
        for pool in pools
        for code in SYSTEM_ACCOUNTS
    ]
    if rows:
        statement = insert_for(connection, accounts).on_conflict_do_nothing(
            index_elements=["pool", "code"], index_where=accounts.c.member_id.is_(None)
        )
        await connection.execute(statement, rows)
    result = await connection.execute(
        sa.select(accounts.c.id, accounts.c.pool, accounts.c.code).where(
            accounts.c.member_id.is_(None)
        )
    )
    return {(row.pool, AccountCode(row.code)): row.id for row in result}


# Members and enrolments


async def insert_member(connection: AsyncConnection, member_id: str, at: datetime) -> None:
    await connection.execute(sa.insert(members).values(id=member_id, created_at=at))


async def claim_enrolment(
    connection: AsyncConnection, partner: str, customer_id: str, member_id: str, at: datetime
) -> bool:
    """Insert the enrolment unless the pair exists; a racing insert waits for the first."""
    statement = (
        insert_for(connection, enrolments)
        .values(partner=partner, customer_id=customer_id, member_id=member_id, created_at=at)
        .on_conflict_do_nothing(index_elements=["partner", "customer_id"])
        .returning(enrolments.c.member_id)
    )
    return (await connection.execute(statement)).first() is not None


async def enrolment(
    connection: AsyncConnection, partner: str, customer_id: str
) -> EnrolmentRecord | None:
    row = (
        await connection.execute(_ENROLMENT, {"partner": partner, "customer_id": customer_id})
    ).first()
    return (
        EnrolmentRecord(row.partner, row.customer_id, row.member_id, row.created_at)
        if row
        else None
    )


async def enrolments_of(
    connection: AsyncConnection, member_ids: Sequence[str]
) -> dict[str, list[EnrolmentRecord]]:
    found: dict[str, list[EnrolmentRecord]] = defaultdict(list)
    result = await connection.execute(
        sa.select(enrolments)
        .where(enrolments.c.member_id.in_(member_ids))
        .order_by(enrolments.c.created_at, enrolments.c.partner)
    )
    for row in result:
        found[row.member_id].append(
            EnrolmentRecord(row.partner, row.customer_id, row.member_id, row.created_at)
        )
    return found


async def members_by_id(
    connection: AsyncConnection, member_ids: Sequence[str]
) -> dict[str, MemberRecord]:
    """Each id's member; a member merged into another gives the surviving member."""
    rows = {
        row.id: row
        for row in await connection.execute(sa.select(members).where(members.c.id.in_(member_ids)))
    }
    survivors = {row.merged_into for row in rows.values() if row.merged_into is not None}
    if survivors:
        result = await connection.execute(sa.select(members).where(members.c.id.in_(survivors)))
        rows.update({row.id: row for row in result})
    found = {}
    for member_id in member_ids:
        row = rows.get(member_id)
        if row is not None and row.merged_into is not None:
            row = rows.get(row.merged_into)
        if row is not None:
            found[member_id] = MemberRecord(row.id, row.created_at, row.erased_at)
    return found


async def merged_into(connection: AsyncConnection, member_id: str) -> list[str]:
    """The ids of members merged into ``member_id``."""
    result = await connection.execute(
        sa.select(members.c.id).where(members.c.merged_into == member_id)
    )
    return [str(row.id) for row in result]


async def merged_into_many(connection: AsyncConnection, survivors: Sequence[str]) -> dict[str, str]:
    """Each of ``survivors`` and every member merged into one of them, mapped to their
    survivor."""
    found = {survivor: survivor for survivor in survivors}
    if survivors:
        result = await connection.execute(
            sa.select(members.c.id, members.c.merged_into).where(
                members.c.merged_into.in_(list(survivors))
            )
        )
        found.update({str(row.id): str(row.merged_into) for row in result})
    return found


# Wallets


async def wallets_of(
    connection: AsyncConnection, member_ids: Sequence[str]
) -> dict[str, list[WalletRecord]]:
    found: dict[str, list[WalletRecord]] = defaultdict(list)
    result = await connection.execute(
        sa.select(accounts.c.member_id, accounts.c.pool, accounts.c.balance)
        .where(accounts.c.member_id.in_(member_ids))
        .order_by(accounts.c.pool)
    )
    for row in result:
        found[row.member_id].append(WalletRecord(row.member_id, row.pool, row.balance))
    return found


async def wallet_balance(connection: AsyncConnection, member_id: str, pool: str) -> int:
    balance = await connection.scalar(
        sa.select(accounts.c.balance).where(
            accounts.c.member_id == member_id, accounts.c.pool == pool
        )
    )
    return int(balance or 0)


# Transfers


async def transfer_by_key(
    connection: AsyncConnection, scope: str, key: str
) -> tuple[TransferRecord, str] | None:
    row = (await connection.execute(_TRANSFER_BY_KEY, {"scope": scope, "key": key})).first()
    return (TransferRecord.from_row(row), row.request_hash) if row else None


async def transfers_by_id(
    connection: AsyncConnection, transfer_ids: Sequence[int]
) -> dict[int, TransferRecord]:
    result = await connection.execute(sa.select(transfers).where(transfers.c.id.in_(transfer_ids)))
    return {row.id: TransferRecord.from_row(row) for row in result}


async def legs_of(
    connection: AsyncConnection, transfer_ids: Sequence[int]
) -> dict[int, list[LegRecord]]:
    found: dict[int, list[LegRecord]] = defaultdict(list)
    result = await connection.execute(
        sa.select(
            entries.c.transfer_id,
            entries.c.pool,
            accounts.c.code,
            entries.c.member_id,
            entries.c.amount,
            entries.c.balance_after,
        )
        .join(accounts, accounts.c.id == entries.c.account_id)
        .where(entries.c.transfer_id.in_(transfer_ids))
        .order_by(entries.c.id)
    )
    for row in result:
        found[row.transfer_id].append(
            LegRecord(
                row.transfer_id,
                row.pool,
                AccountCode(row.code),
                row.member_id,
                row.amount,
                row.balance_after,
            )
        )
    return found


async def member_history(
    connection: AsyncConnection,
    member_ids: Sequence[str],
    pool: str | None,
    before: int | None,
    limit: int,
) -> list[TransferRecord]:
    """The members' transfers (a member and those merged into it), newest first, by
    keyset on the transfer id."""
    touching = sa.select(entries.c.transfer_id.label("id")).where(
        entries.c.member_id.in_(member_ids)
    )
    # Some transfers never touch the member's wallet (a capture in full moves held points
    # to redemption): they are the member's by the transfer's own member.
    own = sa.select(transfers.c.id.label("id")).where(transfers.c.member_id.in_(member_ids))
    if pool is not None:
        touching = touching.where(entries.c.pool == pool)
        own = own.where(sa.or_(transfers.c.partner == pool, transfers.c.to_partner == pool))
    if before is not None:
        touching = touching.where(entries.c.transfer_id < before)
        own = own.where(transfers.c.id < before)
    # Each side limited on its own (in a subquery, as SQLite wants), then merged.
    by_entries = touching.order_by(entries.c.transfer_id.desc()).limit(limit).subquery()
    by_transfer = own.order_by(transfers.c.id.desc()).limit(limit).subquery()
    newest = sa.union(sa.select(by_entries.c.id), sa.select(by_transfer.c.id)).subquery()
    ids = sa.select(newest.c.id).order_by(newest.c.id.desc()).limit(limit)
    result = await connection.execute(
        sa.select(transfers).where(transfers.c.id.in_(ids)).order_by(transfers.c.id.desc())
    )
    return [TransferRecord.from_row(row) for row in result]


async def pool_figures(connection: AsyncConnection, pool: str) -> dict[str, int]:
    """Totals of a pool's system accounts (derived from entries) and of its wallets."""
    result = await connection.execute(
        sa.select(accounts.c.code, sa.func.coalesce(sa.func.sum(entries.c.amount), 0))
        .join(accounts, accounts.c.id == entries.c.account_id)
        .where(entries.c.pool == pool, accounts.c.member_id.is_(None))
        .group_by(accounts.c.code)
    )
    figures = {str(code): int(total) for code, total in result}
    wallets = (
        await connection.execute(
            sa.select(
                sa.func.coalesce(sa.func.sum(accounts.c.balance), 0),
                sa.func.count().filter(accounts.c.balance > 0),
            ).where(accounts.c.pool == pool, accounts.c.member_id.isnot(None))
        )
    ).one()
    figures["outstanding"] = int(wallets[0])
    figures["holders"] = int(wallets[1])
    return figures


# What counts as spending a pool's points (step-up sums these).
SPENDING = (
    TransferKind.REDEEM,
    TransferKind.CONVERSION,
    TransferKind.HOLD,
    TransferKind.GIFT,
)


async def spent_since(
    connection: AsyncConnection,
    member_ids: Sequence[str],
    pool: str,
    since: datetime,
    retry_of: Sequence[tuple[str, str]],
    kinds: Sequence[TransferKind] = SPENDING,
) -> int:
    """Points the members moved out of ``pool`` since ``since`` by transfers of ``kinds``
    (redeemed, converted, held or gifted), leaving out the transfers a retry would answer
    with (``retry_of``: scopes and keys)."""
    total = await connection.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(transfers.c.points), 0)).where(
            transfers.c.member_id.in_(member_ids),
            transfers.c.partner == pool,
            transfers.c.kind.in_([kind.value for kind in kinds]),
            transfers.c.created_at >= since,
            *(
                sa.not_(
                    sa.and_(
                        transfers.c.idempotency_scope == scope,
                        transfers.c.idempotency_key == key,
                    )
                )
                for scope, key in retry_of
            ),
        )
    )
    return int(total or 0)


async def insert_obligation(connection: AsyncConnection, values: dict[str, Any]) -> None:
    await connection.execute(sa.insert(obligations).values(**values))
