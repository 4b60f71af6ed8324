"""The export (GDPR articles 15 and 20): everything held about a member as one JSON-safe,
versioned document, read in one snapshot.

Transfers and purchases are read in pages of ``PAGE``; ``limit`` bounds how many of each
the document takes (the API's, ``MAX_ROWS``; the CLI exports everything). A document cut
short says so in ``complete`` and ``limits``. Sections other packages own (the audit
trail's entries) are callables the composition root registers: ``Section``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.challenges.personal import awards_of
from gateway.earning.personal import pending_of, purchases_page, referrals_of
from gateway.holds.personal import holds_of
from gateway.holds.service import AUTHORIZED
from gateway.ledger import personal as ledger
from gateway.ledger import store as ledger_store
from gateway.ledger.records import TransferRecord
from gateway.members.personal import identities_of, sessions_of
from gateway.privacy import store
from gateway.rewards.personal import redemptions_of
from gateway.tiers.personal import tier_of

FORMAT = 1
PAGE = 500
MAX_ROWS = 10_000  # transfers (and purchases) in a document the API answers

# A section's reader takes the member's ids: the member's own first, then those merged into it.
Section = Callable[[AsyncConnection, Sequence[str]], Awaitable[object]]


def json_safe(value: Any) -> Any:
    """Datetimes as ISO 8601 text, decimals as text, enums by value, containers through."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_safe(item) for item in value]
    return value


async def _transfers(
    connection: AsyncConnection, ids: Sequence[str], limit: int | None
) -> tuple[list[dict[str, Any]], bool]:
    """The members' transfers with their legs, oldest first; whether all were taken."""
    found: list[dict[str, Any]] = []
    after = 0
    while limit is None or len(found) < limit:
        size = PAGE if limit is None else min(PAGE, limit - len(found))
        page = await ledger.transfers_page(connection, ids, after, size)
        if not page:
            return found, True
        legs = await ledger_store.legs_of(connection, [t.id for t in page])
        found.extend(_transfer(t, legs.get(t.id, []), ids) for t in page)
        after = page[-1].id
        if len(page) < size:
            return found, True
    return found, not await ledger.transfers_page(connection, ids, after, 1)


def _transfer(transfer: TransferRecord, legs: Sequence[Any], ids: Sequence[str]) -> dict[str, Any]:
    # Another member's transfer (a gift they gave this member) is shown without their id
    # and their key: those are the giver's data.
    mine = transfer.member_id in ids
    return {
        "id": transfer.id,
        "kind": transfer.kind,
        "memberId": transfer.member_id if mine else None,
        "partner": transfer.partner,
        "toPartner": transfer.to_partner,
        "points": transfer.points,
        "receivedPoints": transfer.received_points,
        "purchaseAmount": transfer.purchase_amount,
        "rate": transfer.rate,
        "fee": transfer.fee,
        "reason": transfer.reason,
        "reversesId": transfer.reverses_id,
        "idempotencyKey": transfer.idempotency_key if mine else None,
        "createdAt": transfer.created_at,
        # The legs of this member's wallets, and the system accounts'; another member's
        # wallet (a gift's other side) is shown without their id.
        "legs": [
            {
                "pool": leg.pool,
                "account": leg.account,
                "amount": leg.amount,
                "yours": leg.member_id in ids if leg.member_id is not None else None,
            }
            for leg in legs
        ],
    }


async def _purchases(
    connection: AsyncConnection, ids: Sequence[str], limit: int | None
) -> tuple[list[dict[str, Any]], bool]:
    found: list[dict[str, Any]] = []
    after = 0
    while limit is None or len(found) < limit:
        size = PAGE if limit is None else min(PAGE, limit - len(found))
        page = await purchases_page(connection, ids, after, size)
        found.extend(page)
        if len(page) < size:
            return found, True
        after = int(page[-1]["id"])
    return found, not await purchases_page(connection, ids, after, 1)


async def document(
    connection: AsyncConnection,
    member_id: str,
    now: datetime,
    limit: int | None = MAX_ROWS,
    sections: Mapping[str, Section] | None = None,
) -> dict[str, Any] | None:
    """The export of ``member_id`` (the member it is now, after any merge); None for an
    unknown member."""
    row = await ledger.member_row(connection, member_id)
    if row is None:
        return None
    live = str(row.merged_into or row.id)
    if live != member_id:
        row = await ledger.member_row(connection, live)
        assert row is not None
    ids = await ledger.member_ids(connection, live)
    holds = await holds_of(connection, ids)
    held: dict[str, int] = {}
    for hold in holds:
        if hold["status"] == AUTHORIZED:
            held[hold["partner"]] = held.get(hold["partner"], 0) + int(hold["points"])
    pending = await pending_of(connection, ids)
    balances: dict[str, int] = {}
    for wallets in (await ledger_store.wallets_of(connection, ids)).values():
        for wallet in wallets:
            balances[wallet.pool] = balances.get(wallet.pool, 0) + wallet.balance
    pools = sorted(set(balances) | set(held) | set(pending))
    enrolments = (await ledger_store.enrolments_of(connection, ids)).values()
    transfers, all_transfers = await _transfers(connection, ids, limit)
    purchases, all_purchases = await _purchases(connection, ids, limit)
    body: dict[str, Any] = {
        "format": FORMAT,
        "exportedAt": now,
        "complete": all_transfers and all_purchases,
        "limits": {"transfers": limit, "purchases": limit},
        "member": {
            "id": live,
            "createdAt": row.created_at,
            "erasedAt": row.erased_at,
            "erasure": await store.erasure_of(connection, live),
            "mergedMembers": ids[1:],
        },
        "identities": await identities_of(connection, ids),
        "enrolments": [
            {
                "partner": e.partner,
                "customerId": e.customer_id,
                "memberId": e.member_id,
                "since": e.created_at,
            }
            for found in enrolments
            for e in found
        ],
        "wallets": [
            {
                "partner": pool,
                "balance": balances.get(pool, 0),
                "held": held.get(pool, 0),
                "pending": pending.get(pool, 0),
            }
            for pool in pools
        ],
        "tier": await tier_of(connection, live),
        "transfers": transfers,
        "holds": holds,
        "purchases": purchases,
        "rewardRedemptions": await redemptions_of(connection, ids),
        "badges": await awards_of(connection, ids),
        "referrals": await referrals_of(connection, ids),
        "sessions": await sessions_of(connection, ids),
    }
    for name, section in (sections or {}).items():
        body[name] = await section(connection, ids)
    result: dict[str, Any] = json_safe(body)
    return result
