"""The expiry's reads of members and wallets: live ids, pages of wallets, balances, locks."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.ledger.rules import TransferKind
from gateway.ledger.tables import accounts, members, transfers

PAGE = 500  # wallets looked at per query


async def live_ids(
    connection: AsyncConnection, member_ids: Sequence[str]
) -> dict[str, tuple[str, list[str]]]:
    """Per given id: the member it is now, and that member's ids (its own first, then
    those of the members merged into it)."""
    rows = {
        row.id: row
        for row in await connection.execute(
            sa.select(members.c.id, members.c.merged_into).where(members.c.id.in_(member_ids))
        )
    }
    live = {
        given: str(row.merged_into or row.id) for given in member_ids if (row := rows.get(given))
    }
    survivors = set(live.values())
    merged: dict[str, list[str]] = defaultdict(list)
    result = await connection.execute(
        sa.select(members.c.id, members.c.merged_into).where(members.c.merged_into.in_(survivors))
    )
    for row in result:
        merged[row.merged_into].append(str(row.id))
    return {given: (member, [member, *merged[member]]) for given, member in live.items()}


async def wallet_page(
    connection: AsyncConnection, pool: str, after: int
) -> list[tuple[int, str, int]]:
    """The next wallets with points at ``pool`` by account id: (id, member, balance)."""
    result = await connection.execute(
        sa.select(accounts.c.id, accounts.c.member_id, accounts.c.balance)
        .where(
            accounts.c.id > after,
            accounts.c.pool == pool,
            accounts.c.member_id.isnot(None),
            accounts.c.balance > 0,
        )
        .order_by(accounts.c.id)
        .limit(PAGE)
    )
    return [(int(row.id), str(row.member_id), int(row.balance)) for row in result]


async def wallet_balance(connection: AsyncConnection, member_ids: Sequence[str], pool: str) -> int:
    total = await connection.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(accounts.c.balance), 0)).where(
            accounts.c.member_id.in_(member_ids), accounts.c.pool == pool
        )
    )
    return int(total or 0)


async def lock_wallet(connection: AsyncConnection, member_id: str, pool: str) -> int:
    balance = await connection.scalar(
        sa.select(accounts.c.balance)
        .where(accounts.c.member_id == member_id, accounts.c.pool == pool)
        .with_for_update()
    )
    return int(balance or 0)


async def expiries_of(connection: AsyncConnection, member_ids: Sequence[str], pool: str) -> int:
    count = await connection.scalar(
        sa.select(sa.func.count()).where(
            transfers.c.member_id.in_(member_ids),
            transfers.c.partner == pool,
            transfers.c.kind == TransferKind.EXPIRY.value,
        )
    )
    return int(count or 0)


# Credits and activity
