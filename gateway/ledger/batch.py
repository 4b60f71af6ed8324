"""Posting a batch of credits at once (PostgreSQL): a handful of set-based statements for
thousands of postings, each one still its own transfer with its own idempotency key.

The caller holds the lock of every member the batch posts to (``locks.lock_members``). The
transfers' insert claims every key: a key some transfer holds raises ``KeysTaken``, and the
caller rolls back and runs the batch again, finding first which keys are taken (``taken``:
one query, worth saving when, as usual, none is). Then:

1. the transfers, in the batch's order (one INSERT ... SELECT FROM unnest);
2. each wallet credited once with the sum of its credits (one upsert for all wallets),
   every wallet entry's ``balance_after`` worked out from the balance it returned, in the
   batch's order, so a member's postings compose as if posted one by one;
3. every leg as an entry (one insert);
4. the observers (``posted_batch``), then one event per transfer (one insert).

A batch posts what a run of single postings would, at one moment (the batch's clock).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.events import outbox
from gateway.ledger import transfer_events
from gateway.ledger.observers import PostingObserver
from gateway.ledger.records import LegRecord, Posting, TransferRecord
from gateway.ledger.rules import AccountCode, Leg, TransferKind, assert_balanced

if TYPE_CHECKING:  # the kernel imports this module
    from gateway.ledger.posting import Claim


class KeysTaken(Exception):
    """A key of the batch is held by another transfer: the transaction must roll back."""


@dataclass(frozen=True)
class Credit:
    """One posting of a batch: its claim, its transfer's columns (``kind``, ``partner``,
    ``points``, optionally ``purchase_amount`` and ``reason``), the member it posts to, its
    legs (wallet legs only credit that member), and what its event's data adds."""

    claim: Claim
    values: Mapping[str, Any]
    member_id: str
    legs: Sequence[Leg]
    event_data: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Taken:
    """A key some transfer already holds: that transfer's id and request fingerprint."""

    transfer_id: int
    fingerprint: str


_TAKEN = sa.text(
    """
SELECT t.id, t.idempotency_scope, t.idempotency_key, t.request_hash FROM transfers t
JOIN unnest(CAST(:scopes AS VARCHAR[]), CAST(:keys AS VARCHAR[])) AS k(scope, key)
  ON t.idempotency_scope = k.scope AND t.idempotency_key = k.key
"""
)

_TRANSFERS = sa.text(
    """
INSERT INTO transfers (kind, member_id, partner, points, purchase_amount, reason,
                       idempotency_scope, idempotency_key, request_hash, created_at)
SELECT i.kind, i.member_id, i.partner, i.points, i.purchase_amount, i.reason,
       i.scope, i.key, i.hash, CAST(:at AS TIMESTAMPTZ)
FROM unnest(CAST(:kinds AS VARCHAR[]), CAST(:members AS VARCHAR[]),
            CAST(:partners AS VARCHAR[]), CAST(:points AS BIGINT[]),
            CAST(:amounts AS VARCHAR[]), CAST(:reasons AS VARCHAR[]),
            CAST(:scopes AS VARCHAR[]), CAST(:keys AS VARCHAR[]), CAST(:hashes AS VARCHAR[]))
     WITH ORDINALITY AS i(kind, member_id, partner, points, purchase_amount, reason,
                          scope, key, hash, ord)
ORDER BY i.ord
ON CONFLICT (idempotency_scope, idempotency_key) DO NOTHING
RETURNING id, idempotency_scope, idempotency_key
"""
)

_WALLETS = sa.text(
    """
INSERT INTO accounts (pool, code, member_id, balance)
SELECT w.pool, 'wallet', w.member_id, w.points
FROM unnest(CAST(:pools AS VARCHAR[]), CAST(:members AS VARCHAR[]),
            CAST(:points AS BIGINT[])) AS w(pool, member_id, points)
ORDER BY w.pool, w.member_id
ON CONFLICT (member_id, pool) WHERE member_id IS NOT NULL
DO UPDATE SET balance = accounts.balance + excluded.balance
RETURNING accounts.id, accounts.pool, accounts.member_id, accounts.balance
"""
)

_ENTRIES = sa.text(
    """
INSERT INTO entries (transfer_id, account_id, pool, member_id, amount, balance_after)
SELECT * FROM unnest(CAST(:transfers AS BIGINT[]), CAST(:accounts AS BIGINT[]),
                     CAST(:pools AS VARCHAR[]), CAST(:members AS VARCHAR[]),
                     CAST(:amounts AS BIGINT[]), CAST(:balances AS BIGINT[]))
"""
)


async def taken(
    connection: AsyncConnection, claims: Sequence[Claim]
) -> dict[tuple[str, str], Taken]:
    """The claims' keys some transfer holds, by (scope, key)."""
    if not claims:
        return {}
    result = await connection.execute(
        _TAKEN,
        {"scopes": [c.scope for c in claims], "keys": [c.key for c in claims]},
    )
    return {
        (str(scope), str(key)): Taken(int(transfer_id), str(fingerprint))
        for transfer_id, scope, key, fingerprint in result
    }


async def post_credits(
    connection: AsyncConnection,
    credits: Sequence[Credit],
    at: datetime,
    system_accounts: Mapping[tuple[str, AccountCode], int],
    observers: Sequence[PostingObserver],
) -> list[Posting]:
    """Post ``credits`` (their members locked: see above), in order; each one's posting.
    Raises ``KeysTaken`` when a key is held by another transfer (nothing may be kept)."""
    if not credits:
        return []
    for credit in credits:
        assert_balanced(list(credit.legs))
    inserted = await connection.execute(
        _TRANSFERS,
        {
            "at": at,
            "kinds": [c.values["kind"] for c in credits],
            "members": [c.member_id for c in credits],
            "partners": [c.values["partner"] for c in credits],
            "points": [c.values["points"] for c in credits],
            "amounts": [c.values.get("purchase_amount") for c in credits],
            "reasons": [c.values.get("reason") for c in credits],
            "scopes": [c.claim.scope for c in credits],
            "keys": [c.claim.key for c in credits],
            "hashes": [c.claim.fingerprint for c in credits],
        },
    )
    ids = {(scope, key): int(transfer_id) for transfer_id, scope, key in inserted}
    if len(ids) != len(credits):
        raise KeysTaken()
    # 2. Each wallet once: the sum of its credits.
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for credit in credits:
        for leg in credit.legs:
            if leg.is_wallet:
                assert leg.amount > 0 and leg.member_id in (None, credit.member_id)
                sums[(leg.pool, credit.member_id)] += leg.amount
    wallets: dict[tuple[str, str], tuple[int, int]] = {}
    if sums:
        keys = sorted(sums)
        result = await connection.execute(
            _WALLETS,
            {
                "pools": [pool for pool, _ in keys],
                "members": [member for _, member in keys],
                "points": [sums[key] for key in keys],
            },
        )
        for account_id, pool, member, balance in result:
            # The balance before the batch: what each entry's balance_after starts from.
            key = (str(pool), str(member))
            wallets[key] = (int(account_id), int(balance) - sums[key])
    # 3. The entries, in the batch's order.
    columns: dict[str, list[Any]] = {
        name: [] for name in ("transfers", "accounts", "pools", "members", "amounts", "balances")
    }
    running = {key: balance for key, (_, balance) in wallets.items()}
    postings: list[Posting] = []
    for credit in credits:
        transfer_id = ids[(credit.claim.scope, credit.claim.key)]
        records: list[LegRecord] = []
        for leg in credit.legs:
            if leg.is_wallet:
                key = (leg.pool, credit.member_id)
                running[key] += leg.amount
                account_id, balance_after = wallets[key][0], running[key]
                owner: str | None = credit.member_id
            else:
                account_id, balance_after, owner = (
                    system_accounts[(leg.pool, leg.account)],
                    None,
                    None,
                )
            records.append(
                LegRecord(transfer_id, leg.pool, leg.account, owner, leg.amount, balance_after)
            )
            columns["transfers"].append(transfer_id)
            columns["accounts"].append(account_id)
            columns["pools"].append(leg.pool)
            columns["members"].append(owner)
            columns["amounts"].append(leg.amount)
            columns["balances"].append(balance_after)
        values = credit.values
        amount = values.get("purchase_amount")
        transfer = TransferRecord(
            id=transfer_id,
            kind=TransferKind(values["kind"]),
            member_id=credit.member_id,
            partner=values["partner"],
            to_partner=None,
            points=values["points"],
            received_points=None,
            purchase_amount=Decimal(amount) if amount else None,
            rate=None,
            fee=None,
            reason=values.get("reason"),
            reverses_id=None,
            idempotency_key=credit.claim.key,
            created_at=at,
        )
        postings.append(Posting(transfer, tuple(records), replayed=False))
    await connection.execute(_ENTRIES, columns)
    # 4. What follows every posting, then the events.
    posted = [(p.transfer, c.claim.scope) for p, c in zip(postings, credits, strict=True)]
    for observer in observers:
        await observer.posted_batch(connection, posted)
    events = [
        transfer_events.posted(p.transfer, c.event_data)
        for p, c in zip(postings, credits, strict=True)
    ]
    await outbox.append(connection, events)
    return postings
