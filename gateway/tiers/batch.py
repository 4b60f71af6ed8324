"""The tier side of a batch of earns (PostgreSQL): every member's qualifying points and tier
through the batch, read in a few statements and written in a few.

The rules are those of a posting at a time (``values``: the running sums and their window
cursor; ``rules.advance``: the tier a value reaches; ``service.TierService.settle``: the
stored state), applied in Python to each member's earns in the batch's order:

- an earn's tier (what its multiplier and tier promotions see) is the stored state advanced
  to the qualifying value before it (``Standing.status``), as ``TierService.current`` gives;
- after each earn the stored state is advanced to the value with it (``Standing.add``), as
  the posting observer's ``settle`` stores it.

``load`` reads the standings (no locks: what an earn's rules see); ``store`` runs in the
batch's own transaction after its transfers: it locks the members' sums (one upsert),
applies the earns again from the locked rows and writes the contributions, the sums and
the tiers that changed. A tier another transaction wrote meanwhile is settled again, as
``settle`` does, member by member.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.tiers.rules import TierState, advance, initial, tier_of, window_start
from gateway.tiers.service import TierService, valuation
from gateway.tiers.values import Window
from partners.config.coalition import Partner
from partners.config.tiers import Tier, Tiers


@dataclass
class Standing:
    """A member's window of qualifying points and stored tier, as a batch moves them."""

    member_id: str
    window: Window
    stored: TierState | None
    state: TierState  # the stored state as the batch leaves it so far
    value: Decimal

    def status(self, tiers: Tiers, now: datetime) -> Tier:
        """The member's tier now, before the next earn (``TierService.current``)."""
        return tier_of(tiers, advance(tiers, self.state, self.value, now))

    def add(
        self,
        tiers: Tiers | None,
        partners: Mapping[str, Partner],
        partner: str,
        points: int,
        at: datetime,
    ) -> None:
        """An earn of ``points`` at ``partner`` posted at ``at`` (inside the window)."""
        window = self.window
        assert window.through is not None and at > window.through
        summed = dict(window.points)
        summed[partner] = summed.get(partner, 0) + points
        following = at if window.next_leave is None else min(window.next_leave, at)
        self.window = Window(window.through, following, _plain(summed))
        self.value = valuation(partners, self.window.points)
        if tiers is not None:
            self.state = advance(tiers, self.state, self.value, at)


def _plain(points: dict[str, int]) -> dict[str, int]:
    return {partner: amount for partner, amount in sorted(points.items()) if amount}


# Arrays are joined through unnest rather than tested with "= ANY(array)": a cached generic
# plan may scan the table testing every row against every element.
_SUMS = sa.text(
    """
SELECT w.member_id, c.partner, SUM(c.points)
FROM unnest(CAST(:members AS VARCHAR[]), CAST(:afters AS TIMESTAMPTZ[]),
            CAST(:uptos AS TIMESTAMPTZ[])) AS w(member_id, after, upto)
JOIN tier_contributions c ON c.member_id = w.member_id AND c.effective_at > w.after
     AND (w.upto IS NULL OR c.effective_at <= w.upto)
GROUP BY w.member_id, c.partner
"""
)
_NEXT_LEAVE = sa.text(
    """
SELECT w.member_id, (SELECT MIN(c.effective_at) FROM tier_contributions c
                     WHERE c.member_id = w.member_id AND c.effective_at > w.after)
FROM unnest(CAST(:members AS VARCHAR[]), CAST(:afters AS TIMESTAMPTZ[])) AS w(member_id, after)
"""
)
_READ_VALUES = sa.text(
    """
SELECT v.member_id, v.through, v.next_leave, v.points
FROM unnest(CAST(:members AS VARCHAR[])) AS m(member_id)
JOIN tier_values v ON v.member_id = m.member_id
"""
)
# The members' sums made to exist, then locked in id order (not one upsert that updates
# every row it finds: that leaves a dead row version per member and batch).
_CREATE_VALUES = sa.text(
    """
INSERT INTO tier_values (member_id, points)
SELECT m, '{}' FROM unnest(CAST(:members AS VARCHAR[])) AS m ORDER BY m
ON CONFLICT (member_id) DO NOTHING
"""
)
_LOCK_VALUES = sa.text(
    """
SELECT v.member_id, v.through, v.next_leave, v.points
FROM unnest(CAST(:members AS VARCHAR[])) AS m(member_id)
JOIN tier_values v ON v.member_id = m.member_id
ORDER BY v.member_id FOR UPDATE OF v
"""
)
_READ_TIERS = sa.text(
    """
SELECT t.member_id, t.tier, t.since, t.review_at, t.downgrade_at
FROM unnest(CAST(:members AS VARCHAR[])) AS m(member_id)
JOIN member_tiers t ON t.member_id = m.member_id
"""
)
_CONTRIBUTIONS = sa.text(
    """
INSERT INTO tier_contributions (member_id, partner, effective_at, points, transfer_id)
SELECT * FROM unnest(CAST(:members AS VARCHAR[]), CAST(:partners AS VARCHAR[]),
                     CAST(:ats AS TIMESTAMPTZ[]), CAST(:points AS BIGINT[]),
                     CAST(:transfers AS BIGINT[]))
"""
)
_WRITE_VALUES = sa.text(
    """
UPDATE tier_values SET through = w.through, next_leave = w.next_leave, points = w.points
FROM unnest(CAST(:members AS VARCHAR[]), CAST(:throughs AS TIMESTAMPTZ[]),
            CAST(:leaves AS TIMESTAMPTZ[]), CAST(:points AS VARCHAR[]))
     AS w(member_id, through, next_leave, points)
WHERE tier_values.member_id = w.member_id
"""
)
_INSERT_TIERS = sa.text(
    """
INSERT INTO member_tiers (member_id, tier, since, review_at, downgrade_at, updated_at)
SELECT w.*, CAST(:at AS TIMESTAMPTZ)
FROM unnest(CAST(:members AS VARCHAR[]), CAST(:tiers AS VARCHAR[]),
            CAST(:sinces AS TIMESTAMPTZ[]), CAST(:reviews AS TIMESTAMPTZ[]),
            CAST(:downgrades AS TIMESTAMPTZ[])) AS w
ON CONFLICT (member_id) DO NOTHING
RETURNING member_id
"""
)
_UPDATE_TIERS = sa.text(
    """
UPDATE member_tiers SET tier = w.tier, since = w.since, review_at = w.review_at,
       downgrade_at = w.downgrade_at, updated_at = CAST(:at AS TIMESTAMPTZ)
FROM unnest(CAST(:members AS VARCHAR[]), CAST(:tiers AS VARCHAR[]),
            CAST(:sinces AS TIMESTAMPTZ[]), CAST(:reviews AS TIMESTAMPTZ[]),
            CAST(:downgrades AS TIMESTAMPTZ[]), CAST(:old_tiers AS VARCHAR[]),
            CAST(:old_sinces AS TIMESTAMPTZ[]), CAST(:old_reviews AS TIMESTAMPTZ[]),
            CAST(:old_downgrades AS TIMESTAMPTZ[]))
     AS w(member_id, tier, since, review_at, downgrade_at, old_tier, old_since, old_review,
          old_downgrade)
WHERE member_tiers.member_id = w.member_id AND member_tiers.tier = w.old_tier
  AND member_tiers.since = w.old_since
  AND member_tiers.review_at IS NOT DISTINCT FROM w.old_review
  AND member_tiers.downgrade_at IS NOT DISTINCT FROM w.old_downgrade
RETURNING member_tiers.member_id
"""
)


def _window(row: Any) -> Window:
    return Window(row.through, row.next_leave, dict(json.loads(row.points)))


async def _moved(
    connection: AsyncConnection, windows: dict[str, Window], start: datetime
) -> dict[str, Window]:
    """Every window with its cursor at ``start`` (``values.moved`` for many members: one
    statement for the sums that changed, one for the next contributions to leave)."""
    changes: dict[str, tuple[datetime, datetime | None, int]] = {}  # after, upto, sign
    moved: dict[str, Window] = {}
    for member, window in windows.items():
        if window.through is None:
            changes[member] = (start, None, 1)
        elif window.through == start:
            moved[member] = window
        elif window.through < start:
            if window.next_leave is None or window.next_leave > start:
                moved[member] = Window(start, window.next_leave, window.points)
            else:
                changes[member] = (window.through, start, -1)
        else:
            changes[member] = (start, window.through, 1)
    if not changes:
        return moved
    members = sorted(changes)
    summed: dict[str, dict[str, int]] = {member: {} for member in members}
    result = await connection.execute(
        _SUMS,
        {
            "members": members,
            "afters": [changes[m][0] for m in members],
            "uptos": [changes[m][1] for m in members],
        },
    )
    for member, partner, points in result:
        summed[str(member)][str(partner)] = int(points or 0)
    leaves = dict(
        (str(member), leave)
        for member, leave in await connection.execute(
            _NEXT_LEAVE, {"members": members, "afters": [start] * len(members)}
        )
    )
    for member in members:
        window, (_, _, sign) = windows[member], changes[member]
        points = {} if window.through is None else dict(window.points)
        for partner, amount in summed[member].items():
            points[partner] = points.get(partner, 0) + sign * amount
        moved[member] = Window(start, leaves.get(member), _plain(points))
    return moved


async def _states(connection: AsyncConnection, members: list[str]) -> dict[str, TierState]:
    result = await connection.execute(_READ_TIERS, {"members": members})
    return {
        str(row.member_id): TierState(row.tier, row.since, row.review_at, row.downgrade_at)
        for row in result
    }


async def _standings(
    connection: AsyncConnection,
    rows: Iterable[Any],
    members: list[str],
    tiers: Tiers | None,
    partners: Mapping[str, Partner],
    now: datetime,
) -> dict[str, Standing]:
    windows = {member: Window(None, None) for member in members}
    windows.update({str(row.member_id): _window(row) for row in rows})
    start = window_start(tiers, now) if tiers is not None else now
    moved = await _moved(connection, windows, start) if tiers is not None else windows
    stored = await _states(connection, members) if tiers is not None else {}
    standings = {}
    for member in members:
        window = moved[member]
        state = stored.get(member) or (initial(tiers) if tiers is not None else None)
        standings[member] = Standing(
            member,
            window,
            stored.get(member),
            state,  # type: ignore[arg-type]  # None only without tiers, never read then
            valuation(partners, window.points),
        )
    return standings


async def load(
    connection: AsyncConnection,
    member_ids: Iterable[str],
    tiers: Tiers,
    partners: Mapping[str, Partner],
    now: datetime,
) -> dict[str, Standing]:
    """The members' standings now (reads only: what the batch's earning rules see)."""
    members = sorted(set(member_ids))
    if not members:
        return {}
    rows = (await connection.execute(_READ_VALUES, {"members": members})).all()
    return await _standings(connection, rows, members, tiers, partners, now)


async def store(
    connection: AsyncConnection,
    service: TierService,
    earns: Sequence[tuple[str, str, int, int]],
    now: datetime,
) -> None:
    """In the batch's transaction: the earns (member, partner, points, transfer id), in
    order, each effective at ``now``: their contributions, the members' sums and tiers."""
    if not earns:
        return
    tiers = service.tiers
    partners = service.ledger.coalition.partners
    members = sorted({member for member, _, _, _ in earns})
    contributions = {
        "members": [e[0] for e in earns],
        "partners": [e[1] for e in earns],
        "ats": [now] * len(earns),
        "points": [e[2] for e in earns],
        "transfers": [e[3] for e in earns],
    }
    if tiers is None:
        # Contributions only, as ``values.add``.
        await connection.execute(_CONTRIBUTIONS, contributions)
        return
    # The sums as they stand before this batch (a window built now reads the contributions
    # there are), then the batch's contributions, added once to the sums.
    await connection.execute(_CREATE_VALUES, {"members": members})
    rows = (await connection.execute(_LOCK_VALUES, {"members": members})).all()
    standings = await _standings(connection, rows, members, tiers, partners, now)
    await connection.execute(_CONTRIBUTIONS, contributions)
    for member, partner, points, _ in earns:
        standings[member].add(tiers, partners, partner, points, now)
    await connection.execute(
        _WRITE_VALUES,
        {
            "members": members,
            "throughs": [standings[m].window.through for m in members],
            "leaves": [standings[m].window.next_leave for m in members],
            "points": [
                json.dumps(standings[m].window.points, separators=(",", ":")) for m in members
            ],
        },
    )
    await _write_tiers(connection, service, standings, now)


async def _write_tiers(
    connection: AsyncConnection,
    service: TierService,
    standings: Mapping[str, Standing],
    now: datetime,
) -> None:
    new = [s for s in standings.values() if s.stored is None and s.state != _initial(service)]
    changed = [s for s in standings.values() if s.stored is not None and s.state != s.stored]
    written: set[str] = set()
    if new:
        result = await connection.execute(
            _INSERT_TIERS,
            {
                "at": now,
                "members": [s.member_id for s in new],
                "tiers": [s.state.tier for s in new],
                "sinces": [s.state.since or now for s in new],
                "reviews": [s.state.review_at for s in new],
                "downgrades": [s.state.downgrade_at for s in new],
            },
        )
        written.update(str(row[0]) for row in result)
    if changed:
        olds = [s.stored for s in changed]
        result = await connection.execute(
            _UPDATE_TIERS,
            {
                "at": now,
                "members": [s.member_id for s in changed],
                "tiers": [s.state.tier for s in changed],
                "sinces": [s.state.since or now for s in changed],
                "reviews": [s.state.review_at for s in changed],
                "downgrades": [s.state.downgrade_at for s in changed],
                "old_tiers": [o.tier for o in olds if o is not None],
                "old_sinces": [o.since for o in olds if o is not None],
                "old_reviews": [o.review_at for o in olds if o is not None],
                "old_downgrades": [o.downgrade_at for o in olds if o is not None],
            },
        )
        written.update(str(row[0]) for row in result)
    for standing in (*new, *changed):
        if standing.member_id not in written:
            # Another transaction stored this member's tier meanwhile: settle from it.
            await service.settle(connection, standing.member_id, now, standing.value)


def _initial(service: TierService) -> TierState:
    assert service.tiers is not None
    return initial(service.tiers)
