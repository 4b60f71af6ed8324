"""bench/bulk.py's direct side: an earn posted over asyncpg with a hand copy of the SQL the
gateway sent for an earn before issue 11 (``make bench`` records the gateway's own statements
instead: bench/trace.py).

One transaction per earn, in the gateway's order of then (gateway/service.py ``earn`` and ``_post``,
gateway/repository.py ``live_member``, ``claim_transfer`` and ``post_legs``): the member
locked against a concurrent merge, the transfer claimed by its idempotency key, the wallet
upsert, then both entries as one executemany.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import asyncpg  # type: ignore[import-untyped]  # ships no type information

from bench.workload import PARTNERS, Earn

# Never the gateway's ``earn:<partner>``, so direct and gateway earns can not collide.
DIRECT_SCOPE = "bench-direct"

# What SQLAlchemy renders for gateway/repository.py with the asyncpg dialect (captured
# with echo=True and PostgreSQL's log_statement), character for character.
# The member lock (locks.lock_members): the member's row and its survivor's, in order.
LIVE_MEMBER = (
    "SELECT members.id, members.merged_into FROM members "
    "WHERE members.id IN ($1::VARCHAR) OR members.id IN (SELECT seen.merged_into "
    "FROM members AS seen WHERE seen.id IN ($2::VARCHAR)) "
    'ORDER BY members.id COLLATE "C" FOR NO KEY UPDATE OF members'
)
CLAIM_TRANSFER = (
    "INSERT INTO transfers (kind, member_id, partner, points, purchase_amount, reason, "
    "idempotency_scope, idempotency_key, request_hash, created_at) VALUES ($1::VARCHAR, "
    "$2::VARCHAR, $3::VARCHAR, $4::BIGINT, $5::VARCHAR, $6::VARCHAR, $7::VARCHAR, "
    "$8::VARCHAR, $9::VARCHAR, $10::TIMESTAMP WITH TIME ZONE) ON CONFLICT "
    "(idempotency_scope, idempotency_key) DO NOTHING RETURNING transfers.id"
)
CREDIT_WALLET = (
    "INSERT INTO accounts (pool, code, member_id, balance) VALUES ($1::VARCHAR, $2::VARCHAR, "
    "$3::VARCHAR, $4::BIGINT) ON CONFLICT (member_id, pool) WHERE member_id IS NOT NULL "
    "DO UPDATE SET balance = (accounts.balance + excluded.balance) "
    "RETURNING accounts.id, accounts.balance"
)
INSERT_ENTRIES = (
    "INSERT INTO entries (transfer_id, account_id, pool, member_id, amount, balance_after) "
    "VALUES ($1::BIGINT, $2::BIGINT, $3::VARCHAR, $4::VARCHAR, $5::BIGINT, $6::BIGINT)"
)
ISSUANCE_ACCOUNTS = "SELECT pool, id FROM accounts WHERE member_id IS NULL AND code = 'issuance'"


def fingerprint(member_id: str, points: int) -> str:
    """The request hash the gateway stores for an earn of ``points`` by member id."""
    request = {
        "member": {"id": member_id},
        "points": points,
        "purchase_amount": None,
        "reason": None,
    }
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


async def issuance_accounts(connection: asyncpg.Connection) -> dict[str, int]:
    """Each partner's issuance account id: the other leg of every earn."""
    rows = await connection.fetch(ISSUANCE_ACCOUNTS)
    accounts = {row["pool"]: row["id"] for row in rows}
    missing = set(PARTNERS) - set(accounts)
    if missing:
        raise RuntimeError(f"no issuance account for {sorted(missing)}")
    return accounts


async def post_earn(
    connection: asyncpg.Connection, issuance: dict[str, int], earn: Earn
) -> str | None:
    """One earn as the gateway posts it; the caller holds the transaction."""
    scope, member_id = f"{DIRECT_SCOPE}:{earn.partner}", earn.member.uuid
    rows = {
        row["id"]: row["merged_into"]
        for row in await connection.fetch(LIVE_MEMBER, member_id, member_id)
    }
    if member_id not in rows:
        return "unknown member"
    member_id = rows[member_id] or member_id
    transfer_id = await connection.fetchval(
        CLAIM_TRANSFER,
        "earn",
        member_id,
        earn.partner,
        earn.points,
        None,
        None,
        scope,
        earn.key,
        fingerprint(member_id, earn.points),
        datetime.now(UTC),
    )
    if transfer_id is None:
        return "idempotency key already used"
    wallet = await connection.fetchrow(
        CREDIT_WALLET, earn.partner, "wallet", member_id, earn.points
    )
    await connection.executemany(
        INSERT_ENTRIES,
        [
            (transfer_id, issuance[earn.partner], earn.partner, None, -earn.points, None),
            (transfer_id, wallet["id"], earn.partner, member_id, earn.points, wallet["balance"]),
        ],
    )
    return None
