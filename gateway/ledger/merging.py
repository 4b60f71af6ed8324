"""A merge's postings: every point of the retired member moves to the survivor, one MERGE
transfer per pool, so both histories keep the movement."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.events import outbox
from gateway.ledger import store as repository
from gateway.ledger.posting import Claim, Kernel, fingerprint
from gateway.ledger.records import Posting
from gateway.ledger.rules import TransferKind, merge_legs


async def absorb_wallets(
    connection: AsyncConnection, kernel: Kernel, retired: str, survivor: str
) -> list[Posting]:
    """Within a merge's transaction: the observers first (tiers, counters), then a posting
    per pool holding points; a merge that moved none appends its event alone."""
    for observer in kernel.observers:
        await observer.merging(connection, retired, survivor)
    postings = []
    for wallet in (await repository.wallets_of(connection, [retired])).get(retired, []):
        if wallet.balance <= 0:
            continue
        claim = Claim(
            f"merge:{retired}",
            wallet.pool,
            fingerprint({"into": survivor, "pool": wallet.pool}),
        )
        values = {
            "kind": TransferKind.MERGE.value,
            "partner": wallet.pool,
            "points": wallet.balance,
            "reason": "Accounts merged after the member proved both sign-ins",
        }
        legs = merge_legs(wallet.pool, retired, survivor, wallet.balance)
        moved = {"retired": retired}
        posting = await kernel.post(connection, claim, values, survivor, legs, None, moved)
        postings.append(posting)
    if not postings:
        await outbox.append(connection, [outbox.merged(survivor, retired, kernel.clock())])
    return postings
