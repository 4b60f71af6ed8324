"""A member's qualifying points, kept up to date in each posting's transaction.

Every posting that counts for tiers records a **contribution** (``tier_contributions``):
an earn adds its points, a clawback takes its points off, a reversal of an earn takes off
the points it reverses (of a clawback: gives them back). A contribution is **effective** at
the posting's time, a reversal at the time of the transfer it reverses, so a reversal never
reaches into another window. The qualifying points at ``now`` are the sum, per partner, of
the contributions effective after the window's start (``tier_rules.window_start``).

``tier_values`` keeps per member that sum as of a cursor (``through``: the contributions
effective after it) and the earliest contribution after the cursor (``next_leave``). Moving
the cursor to a later window start subtracts the contributions that left the window (read
only when ``next_leave`` says some did); a contribution enters once and leaves once, so a
posting costs amortised O(1) whatever the member's history. A cursor moving back (a longer
window configured) adds them again. A merge re-keys the retired member's contributions to
the survivor and drops both sums, which are built again from the contributions when next
needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.kernel.schema import insert_for
from gateway.tiers.tables import tier_contributions, tier_values

C = tier_contributions.c


@dataclass(frozen=True)
class Window:
    """The contributions effective after ``through``, summed per partner."""

    through: datetime | None  # None: not built
    next_leave: datetime | None
    points: dict[str, int] = field(default_factory=dict)


def _window(row: Any) -> Window:
    if row is None:
        return Window(None, None)
    return Window(row.through, row.next_leave, dict(json.loads(row.points)))


async def _sums(
    connection: AsyncConnection, member_id: str, after: datetime, upto: datetime | None
) -> dict[str, int]:
    condition = [C.member_id == member_id, C.effective_at > after]
    if upto is not None:
        condition.append(C.effective_at <= upto)
    result = await connection.execute(
        sa.select(C.partner, sa.func.sum(C.points).label("points"))
        .where(*condition)
        .group_by(C.partner)
    )
    return {str(row.partner): int(row.points or 0) for row in result}


async def _next_leave(
    connection: AsyncConnection, member_id: str, after: datetime
) -> datetime | None:
    value: datetime | None = await connection.scalar(
        sa.select(C.effective_at)
        .where(C.member_id == member_id, C.effective_at > after)
        .order_by(C.effective_at)
        .limit(1)
    )
    return value


async def moved(
    connection: AsyncConnection, member_id: str, window: Window, start: datetime
) -> Window:
    """``window`` with its cursor at ``start``."""
    if window.through is None:
        points = await _sums(connection, member_id, start, None)
        return Window(start, await _next_leave(connection, member_id, start), _plain(points))
    if window.through == start:
        return window
    if window.through < start:
        if window.next_leave is None or window.next_leave > start:
            return Window(start, window.next_leave, window.points)  # nothing left the window
        changes, sign = await _sums(connection, member_id, window.through, start), -1
    else:
        changes, sign = await _sums(connection, member_id, start, window.through), 1
    points = dict(window.points)
    for partner, amount in changes.items():
        points[partner] = points.get(partner, 0) + sign * amount
    return Window(start, await _next_leave(connection, member_id, start), _plain(points))


def _plain(points: dict[str, int]) -> dict[str, int]:
    return {partner: amount for partner, amount in sorted(points.items()) if amount}


async def read(connection: AsyncConnection, member_id: str, start: datetime) -> dict[str, int]:
    """The member's qualifying points per partner in the window after ``start`` (a read:
    nothing is stored)."""
    row = (
        await connection.execute(sa.select(tier_values).where(tier_values.c.member_id == member_id))
    ).first()
    return (await moved(connection, member_id, _window(row), start)).points


def _contribution(
    member_id: str, partner: str, points: int, effective_at: datetime, transfer_id: int
) -> Any:
    return sa.insert(tier_contributions).values(
        member_id=member_id,
        partner=partner,
        effective_at=effective_at,
        points=points,
        transfer_id=transfer_id,
    )


async def add(
    connection: AsyncConnection,
    member_id: str,
    partner: str,
    points: int,
    effective_at: datetime,
    transfer_id: int,
) -> None:
    """Record a contribution (without a running sum: see ``contribute``)."""
    await connection.execute(_contribution(member_id, partner, points, effective_at, transfer_id))


async def contribute(
    connection: AsyncConnection,
    member_id: str,
    partner: str,
    points: int,
    effective_at: datetime,
    transfer_id: int,
    start: datetime,
) -> dict[str, int]:
    """Record a contribution and keep the running sum: the member's qualifying points per
    partner in the window after ``start``, this contribution included."""
    # One statement makes the member's row exist and locks it (a bonus posting may run
    # alongside an earn: they hold the member's row in modes that do not exclude each other).
    claim = insert_for(connection, tier_values).values(member_id=member_id, points="{}")
    row = (
        await connection.execute(
            claim.on_conflict_do_update(
                index_elements=["member_id"], set_={"member_id": claim.excluded.member_id}
            ).returning(*tier_values.c)
        )
    ).first()
    window = await moved(connection, member_id, _window(row), start)
    assert window.through is not None
    if effective_at > window.through:
        summed = dict(window.points)
        summed[partner] = summed.get(partner, 0) + points
        following = window.next_leave
        window = Window(
            window.through,
            effective_at if following is None else min(following, effective_at),
            _plain(summed),
        )
    update = (
        sa.update(tier_values)
        .where(tier_values.c.member_id == member_id)
        .values(
            through=window.through,
            next_leave=window.next_leave,
            points=json.dumps(window.points, separators=(",", ":")),
        )
    )
    contribution = _contribution(member_id, partner, points, effective_at, transfer_id)
    if connection.dialect.name == "postgresql":
        # One round trip: the contribution's insert rides along as a CTE.
        await connection.execute(update.add_cte(contribution.cte("contribution")))
    else:
        await connection.execute(contribution)
        await connection.execute(update)
    return window.points


async def fold(connection: AsyncConnection, retired: str, survivor: str) -> None:
    """Within a merge: the retired member's contributions become the survivor's; both
    running sums are built again when next needed."""
    await connection.execute(
        sa.update(tier_contributions)
        .where(tier_contributions.c.member_id == retired)
        .values(member_id=survivor)
    )
    await connection.execute(
        sa.delete(tier_values).where(tier_values.c.member_id.in_([retired, survivor]))
    )
