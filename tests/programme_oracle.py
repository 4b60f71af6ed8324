"""The old rescan computations of tiers and challenges, kept as the property test's oracle
(never on the gateway's path): what a member's qualifying value and challenge progress were
when they were counted from the ledger's history at every read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.challenges.counters import BONUS_SCOPE
from gateway.ledger.rules import TransferKind
from gateway.ledger.tables import members, transfers
from gateway.tiers.rules import window_start
from partners.config.challenges import Challenge, ChallengeKind
from partners.config.coalition import Coalition


async def member_set(connection: AsyncConnection, member_id: str) -> list[str]:
    """The member and every member merged into them."""
    result = await connection.execute(
        sa.select(members.c.id).where(members.c.merged_into == member_id)
    )
    return [member_id, *(str(row.id) for row in result)]


async def qualifying_value(
    connection: AsyncConnection, coalition: Coalition, member_id: str, now: datetime
) -> Decimal:
    """The value as ``gateway/tiers.py`` summed it from the transfers before issue 11."""
    tiers = coalition.tiers
    assert tiers is not None
    ids = await member_set(connection, member_id)
    start = window_start(tiers, now)
    earn, clawback = TransferKind.EARN.value, TransferKind.CLAWBACK.value
    reversal = TransferKind.REVERSAL.value
    t, original = transfers, transfers.alias("original")
    points = sa.case(
        (t.c.kind == earn, t.c.points),
        (t.c.kind == clawback, -t.c.points),
        (sa.and_(t.c.kind == reversal, original.c.kind == earn), -t.c.points),
        (sa.and_(t.c.kind == reversal, original.c.kind == clawback), t.c.points),
        else_=0,
    )
    query = (
        sa.select(t.c.partner, sa.func.sum(points).label("points"))
        .select_from(t.outerjoin(original, original.c.id == t.c.reverses_id))
        .where(
            t.c.member_id.in_(ids),
            t.c.kind.in_((earn, clawback, reversal)),
            t.c.created_at > start,
            t.c.created_at <= now,
            sa.func.coalesce(original.c.created_at, t.c.created_at) > start,
        )
        .group_by(t.c.partner)
    )
    partners = coalition.partners
    return sum(
        (
            partners[str(row.partner)].point_value * int(row.points or 0)
            for row in await connection.execute(query)
            if row.partner in partners
        ),
        Decimal(0),
    )


@dataclass(frozen=True)
class Earn:
    partner: str
    points: int  # what is left after reversals
    created_at: datetime


async def earns(
    connection: AsyncConnection, member_ids: Sequence[str], start: datetime, end: datetime
) -> list[Earn]:
    """The members' earns in ``[start, end)`` less what reversals took back, bonus points
    of challenges left out (``ChallengeService._earns`` before issue 11)."""
    rows = (
        await connection.execute(
            sa.select(
                transfers.c.id, transfers.c.partner, transfers.c.points, transfers.c.created_at
            ).where(
                transfers.c.member_id.in_(list(member_ids)),
                transfers.c.kind == TransferKind.EARN.value,
                transfers.c.created_at >= start,
                transfers.c.created_at < end,
                sa.not_(transfers.c.idempotency_scope.startswith(f"{BONUS_SCOPE}:")),
            )
        )
    ).all()
    taken: dict[int, int] = defaultdict(int)
    if rows:
        reversals = await connection.execute(
            sa.select(transfers.c.reverses_id, transfers.c.points).where(
                transfers.c.reverses_id.in_([row.id for row in rows])
            )
        )
        for reversal in reversals:
            taken[reversal.reverses_id] += reversal.points
    return [Earn(row.partner, row.points - taken[row.id], row.created_at) for row in rows]


def count(challenge: Challenge, found: Sequence[Earn], start: datetime, end: datetime) -> int:
    """The member's progress in ``challenge`` from their earns in ``[start, end)``."""
    counted = [
        earn
        for earn in found
        if start <= earn.created_at < end
        and earn.points > 0
        and (challenge.partner is None or earn.partner == challenge.partner)
    ]
    if challenge.kind is ChallengeKind.PARTNERS_IN_PERIOD:
        return len({earn.partner for earn in counted})
    if challenge.kind is ChallengeKind.VISITS_AT_PARTNER:
        return len(counted)
    return sum(earn.points for earn in counted)


async def progress(
    connection: AsyncConnection, challenge: Challenge, member_id: str, period_start: datetime
) -> int:
    """The member's progress in the challenge's period from ``period_start``, rescanned."""
    window = challenge.window(period_start)
    if window is None:
        return 0
    ids = await member_set(connection, member_id)
    return count(challenge, await earns(connection, ids, *window), *window)
