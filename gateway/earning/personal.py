"""The earning programme's side of data rights (gateway.privacy): a member's purchases
(with their returns) and referrals for an export; for an erasure, the receipts and return
keys replaced by random tokens (amounts and points kept: the ledger and settlement rest on
them), the pending points found and set aside, the referral code removed."""

from __future__ import annotations

import json
import secrets
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.earning.pending import PENDING
from gateway.earning.tables import purchase_returns, purchases, referral_codes, referrals

FORFEITED = "forfeited"  # a pending purchase of an erased member: its points went to breakage


async def purchases_page(
    connection: AsyncConnection, member_ids: Sequence[str], after: int, limit: int
) -> list[dict[str, Any]]:
    """The members' purchases after purchase ``after``, oldest first, with their returns."""
    result = await connection.execute(
        sa.select(purchases)
        .where(purchases.c.member_id.in_(member_ids), purchases.c.id > after)
        .order_by(purchases.c.id)
        .limit(limit)
    )
    rows = result.all()
    returns: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if rows:
        found = await connection.execute(
            sa.select(purchase_returns)
            .where(purchase_returns.c.purchase_id.in_([row.id for row in rows]))
            .order_by(purchase_returns.c.id)
        )
        for back in found:
            returns[back.purchase_id].append(
                {
                    "idempotencyKey": back.idempotency_key,
                    "amount": back.amount,
                    "pointsTaken": back.taken,
                    "pointsOwed": back.owed,
                    "uncollected": back.uncollected,
                    "transferId": back.transfer_id,
                    "at": back.created_at,
                }
            )
    return [
        {
            "id": row.id,
            "partner": row.partner,
            "receipt": row.receipt,
            "amount": row.amount,
            "points": row.points,
            "breakdown": [
                {"rule": rule, "description": text, "points": points}
                for rule, text, points in json.loads(row.breakdown)
            ],
            "status": row.status,
            "maturesAt": row.matures_at,
            "returnedAmount": row.returned_amount,
            "clawedBack": row.clawed_back,
            "transferId": row.transfer_id,
            "at": row.created_at,
            "returns": returns[row.id],
        }
        for row in rows
    ]


async def referrals_of(connection: AsyncConnection, member_ids: Sequence[str]) -> dict[str, Any]:
    code = await connection.scalar(
        sa.select(referral_codes.c.code).where(referral_codes.c.member_id.in_(member_ids)).limit(1)
    )
    result = await connection.execute(
        sa.select(referrals).where(
            sa.or_(referrals.c.referred_id.in_(member_ids), referrals.c.referrer_id.in_(member_ids))
        )
    )
    # The other member of a referral is someone else: their id is not this member's data.
    made, by = [], None
    for row in result:
        entry = {"at": row.created_at, "rewardedAt": row.rewarded_at}
        if row.referred_id in member_ids:
            by = {"referrerId": None, **entry}
        else:
            made.append({"referredId": None, **entry})
    return {"code": code, "referredBy": by, "referred": made}


async def forfeit_pending(
    connection: AsyncConnection, member_ids: Sequence[str], pools: Sequence[str]
) -> dict[str, int]:
    """Take the members' pending purchases at ``pools`` out of maturing (status
    ``forfeited``): the points each still had pending, summed per partner, for the caller
    to post to breakage."""
    result = await connection.execute(
        sa.update(purchases)
        .where(
            purchases.c.member_id.in_(member_ids),
            purchases.c.status == PENDING,
            purchases.c.partner.in_(pools),
        )
        .values(status=FORFEITED)
        .returning(purchases.c.partner, purchases.c.points, purchases.c.clawed_back)
    )
    pending: dict[str, int] = defaultdict(int)
    for row in result.all():
        if row.points > row.clawed_back:
            pending[str(row.partner)] += int(row.points - row.clawed_back)
    return dict(pending)


async def scrub_purchases(
    connection: AsyncConnection, member_ids: Sequence[str], prefix: str
) -> None:
    """Replace the members' receipts and return keys by ``prefix``, a random part and the
    row's id (unique, saying nothing of the value), the returns' request fingerprints by a
    random value; delete their referral code."""
    stamp = f"{prefix}{secrets.token_hex(6)}:"
    await connection.execute(
        sa.update(purchases)
        .where(purchases.c.member_id.in_(member_ids), purchases.c.receipt.not_like(f"{prefix}%"))
        .values(receipt=sa.literal(stamp) + sa.cast(purchases.c.id, sa.String))
    )
    theirs = sa.select(purchases.c.id).where(purchases.c.member_id.in_(member_ids))
    await connection.execute(
        sa.update(purchase_returns)
        .where(
            purchase_returns.c.purchase_id.in_(theirs),
            purchase_returns.c.idempotency_key.not_like(f"{prefix}%"),
        )
        .values(
            idempotency_key=sa.literal(stamp) + sa.cast(purchase_returns.c.id, sa.String),
            request_hash=prefix + secrets.token_hex(28),  # a hash of a request naming the receipt
        )
    )
    await connection.execute(
        sa.delete(referral_codes).where(referral_codes.c.member_id.in_(member_ids))
    )


async def pending_of(connection: AsyncConnection, member_ids: Sequence[str]) -> dict[str, int]:
    """The members' points pending (waiting out a return window), per partner."""
    result = await connection.execute(
        sa.select(purchases.c.partner, sa.func.sum(purchases.c.points - purchases.c.clawed_back))
        .where(purchases.c.member_id.in_(member_ids), purchases.c.status == PENDING)
        .group_by(purchases.c.partner)
    )
    return {str(partner): int(total or 0) for partner, total in result}
