"""Challenge progress as counters, kept in each earn's transaction (no rescan of history).

Per member, challenge, period and partner (``challenge_counters``): ``visits``, the earns
not reversed in full, and ``points``, their points left after reversals. An earn adds to
the counters of every active challenge it counts for (its partner, inside the challenge's
validity), in the period that holds it: one statement, whatever the member's history. A
reversal of an earn takes its points off the earn's period (and the visit, once the earn is
reversed in full). Bonus points of challenges (idempotency scope ``challenge:<partner>``)
are not earns that count. A merge adds the retired member's counters to the survivor's.

A challenge created, changed in its validity or (re)activated gets its counters built from
the ledger once (``rebuild``: the periods that hold the last ``REBUILD_DAYS`` days), under a
table lock that makes concurrent earns wait, so that none is counted twice or missed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.challenges.tables import challenge_counters, challenges
from gateway.kernel.schema import Moment, insert_for
from gateway.ledger.tables import members, transfers
from partners.config.challenges import Challenge, ChallengeKind, Period

BONUS_SCOPE = "challenge"  # idempotency scope prefix of bonus transfers: "challenge:<partner>"
REBUILD_DAYS = 40  # what the longest sweep looks back (``coalition challenges evaluate``)
K = challenge_counters.c
KEY = ["challenge", "member_id", "period_start", "partner"]

Counts = dict[tuple[str, datetime], list[tuple[str, int, int]]]  # (slug, start) -> rows


def is_bonus(scope: str) -> bool:
    return scope.startswith(f"{BONUS_SCOPE}:")


def _counting(partner: str, at: datetime) -> list[sa.ColumnElement[bool]]:
    """The challenges an earn at ``partner`` at ``at`` counts for."""
    ch = challenges.c
    return [
        ch.active.is_(True),
        sa.or_(ch.partner.is_(None), ch.partner == partner),
        sa.or_(ch.valid_from.is_(None), ch.valid_from <= at),
        sa.or_(ch.valid_until.is_(None), ch.valid_until > at),
    ]


def _moment(value: datetime) -> Any:
    return sa.literal(value, Moment())


async def count_earn(
    connection: AsyncConnection, member_id: str, partner: str, points: int, at: datetime
) -> None:
    """An earn: one more visit and ``points`` more, in every challenge it counts for."""
    ch = challenges.c
    start = sa.case(
        (ch.period == Period.WEEK.value, _moment(Period.WEEK.start(at))),
        (ch.period == Period.MONTH.value, _moment(Period.MONTH.start(at))),
        else_=_moment(Period.YEAR.start(at)),
    )
    rows = sa.select(
        ch.slug,
        sa.literal(member_id, sa.String),
        start,
        sa.literal(partner, sa.String),
        sa.literal(1, sa.BigInteger),
        sa.literal(points, sa.BigInteger),
    ).where(*_counting(partner, at))
    insert = insert_for(connection, challenge_counters).from_select(
        [*KEY, "visits", "points"], rows
    )
    await connection.execute(
        insert.on_conflict_do_update(
            index_elements=KEY,
            set_={
                "visits": K.visits + insert.excluded.visits,
                "points": K.points + insert.excluded.points,
            },
        )
    )


async def count_earns(
    connection: AsyncConnection, earns: Sequence[tuple[str, str, int]], at: datetime
) -> None:
    """A batch's earns (member, partner, points), all made at ``at``: ``count_earn`` for
    each, in one statement (PostgreSQL), added up per member and partner."""
    totals: dict[tuple[str, str], list[int]] = {}
    for member_id, partner, points in earns:
        total = totals.setdefault((member_id, partner), [0, 0])
        total[0] += 1
        total[1] += points
    if not totals:
        return
    keys = sorted(totals)
    await connection.execute(
        _COUNT_EARNS,
        {
            "members": [member for member, _ in keys],
            "partners": [partner for _, partner in keys],
            "visits": [totals[key][0] for key in keys],
            "points": [totals[key][1] for key in keys],
            "week": Period.WEEK.start(at),
            "month": Period.MONTH.start(at),
            "year": Period.YEAR.start(at),
            "at": at,
        },
    )


_COUNT_EARNS = sa.text(
    f"""
INSERT INTO challenge_counters ({", ".join(KEY)}, visits, points)
SELECT ch.slug, e.member_id,
       CASE ch.period WHEN '{Period.WEEK.value}' THEN CAST(:week AS TIMESTAMPTZ)
                      WHEN '{Period.MONTH.value}' THEN CAST(:month AS TIMESTAMPTZ)
                      ELSE CAST(:year AS TIMESTAMPTZ) END,
       e.partner, e.visits, e.points
FROM unnest(CAST(:members AS VARCHAR[]), CAST(:partners AS VARCHAR[]),
            CAST(:visits AS BIGINT[]), CAST(:points AS BIGINT[]))
     AS e(member_id, partner, visits, points)
JOIN challenges ch ON ch.active AND (ch.partner IS NULL OR ch.partner = e.partner)
     AND (ch.valid_from IS NULL OR ch.valid_from <= CAST(:at AS TIMESTAMPTZ))
     AND (ch.valid_until IS NULL OR ch.valid_until > CAST(:at AS TIMESTAMPTZ))
ORDER BY ch.slug, e.member_id, e.partner
ON CONFLICT ({", ".join(KEY)}) DO UPDATE
SET visits = challenge_counters.visits + excluded.visits,
    points = challenge_counters.points + excluded.points
"""
)


async def count_reversal(
    connection: AsyncConnection,
    member_id: str,
    partner: str,
    points: int,
    at: datetime,
    in_full: bool,
) -> None:
    """A reversal of ``points`` of an earn made at ``at``; ``in_full``: nothing of the earn
    is left now (its visit no longer counts)."""
    ch = challenges.c
    found = await connection.execute(
        sa.select(ch.slug, ch.period).where(*_counting(partner, at)).order_by(ch.slug)
    )
    for slug, period in found.all():
        await connection.execute(
            sa.update(challenge_counters)
            .where(
                K.challenge == slug,
                K.member_id == member_id,
                K.period_start == Period(period).start(at),
                K.partner == partner,
            )
            .values(visits=K.visits - (1 if in_full else 0), points=K.points - points)
        )


async def fold(connection: AsyncConnection, retired: str, survivor: str) -> None:
    """Within a merge: the retired member's counters added to the survivor's."""
    rows = (
        await connection.execute(
            sa.select(challenge_counters).where(K.member_id == retired).order_by(*KEY)
        )
    ).all()
    for row in rows:
        insert = insert_for(connection, challenge_counters).values(
            challenge=row.challenge,
            member_id=survivor,
            period_start=row.period_start,
            partner=row.partner,
            visits=row.visits,
            points=row.points,
        )
        await connection.execute(
            insert.on_conflict_do_update(
                index_elements=KEY,
                set_={
                    "visits": K.visits + insert.excluded.visits,
                    "points": K.points + insert.excluded.points,
                },
            )
        )
    await connection.execute(sa.delete(challenge_counters).where(K.member_id == retired))


def among(
    connection: AsyncConnection, column: sa.ColumnElement[Any], values: Sequence[str]
) -> sa.ColumnElement[bool]:
    """``column`` is one of ``values``. On PostgreSQL, however many: one array parameter,
    joined (a hash or an index lookup, as the planner sees fit, never a search of the
    array for each row)."""
    if connection.dialect.name == "postgresql":
        array = sa.bindparam(None, list(values), postgresql.ARRAY(sa.String))
        return column.in_(sa.select(sa.func.unnest(array)))
    return column.in_(list(values))


async def read(
    connection: AsyncConnection, member_id: str, keys: Iterable[tuple[str, datetime]]
) -> Counts:
    """The member's counters of these (challenge, period start) pairs."""
    found = await read_many(connection, [(member_id, slug, start) for slug, start in keys])
    return {(slug, start): rows for (_, slug, start), rows in found.items()}


async def read_many(
    connection: AsyncConnection, keys: Iterable[tuple[str, str, datetime]]
) -> dict[tuple[str, str, datetime], list[tuple[str, int, int]]]:
    """The counters of these (member, challenge, period start) triples: one statement (on
    PostgreSQL the triples joined as arrays, each found through the primary key)."""
    wanted = sorted(set(keys))
    found: dict[tuple[str, str, datetime], list[tuple[str, int, int]]] = defaultdict(list)
    if not wanted:
        return found
    if connection.dialect.name == "postgresql":
        result = await connection.execute(
            _READ_MANY,
            {
                "members": [member for member, _, _ in wanted],
                "challenges": [slug for _, slug, _ in wanted],
                "starts": [start for _, _, start in wanted],
            },
        )
    else:
        result = await connection.execute(
            sa.select(challenge_counters).where(
                K.member_id.in_(sorted({member for member, _, _ in wanted})),
                K.challenge.in_(sorted({slug for _, slug, _ in wanted})),
                K.period_start.in_(sorted({start for _, _, start in wanted})),
            )
        )
    chosen = set(wanted)
    for row in result:
        key = (row.member_id, row.challenge, row.period_start)
        if key in chosen:
            found[key].append((row.partner, row.visits, row.points))
    return found


_READ_MANY = sa.text(
    """
SELECT c.member_id, c.challenge, c.period_start, c.partner, c.visits, c.points
FROM unnest(CAST(:members AS VARCHAR[]), CAST(:challenges AS VARCHAR[]),
            CAST(:starts AS TIMESTAMPTZ[])) AS k(member_id, challenge, period_start)
JOIN challenge_counters c ON c.challenge = k.challenge AND c.member_id = k.member_id
     AND c.period_start = k.period_start
"""
).columns(K.member_id, K.challenge, K.period_start, K.partner, K.visits, K.points)


def progress(challenge: Challenge, rows: Sequence[tuple[str, int, int]]) -> int:
    """Partners, visits or points so far, from a period's counters."""
    if challenge.kind is ChallengeKind.PARTNERS_IN_PERIOD:
        return sum(1 for _, visits, _ in rows if visits > 0)
    if challenge.kind is ChallengeKind.VISITS_AT_PARTNER:
        return sum(visits for _, visits, _ in rows)
    return sum(points for _, _, points in rows)


async def reached(
    connection: AsyncConnection, challenge: Challenge, start: datetime
) -> list[tuple[str, int]]:
    """The members whose counters reach the challenge's target in the period from
    ``start``, with their progress (for the sweep)."""
    result = await connection.execute(
        sa.select(K.member_id, K.partner, K.visits, K.points).where(
            K.challenge == challenge.slug, K.period_start == start
        )
    )
    rows: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    for row in result:
        rows[str(row.member_id)].append((row.partner, row.visits, row.points))
    found = [(member, progress(challenge, counted)) for member, counted in rows.items()]
    return sorted((m, p) for m, p in found if p >= challenge.target)


async def lock(connection: AsyncConnection) -> None:
    """Before changing what challenges count (and rebuilding their counters): earns that
    count wait until this transaction ends, and so does another such change (the mode
    conflicts with itself: two syncs at start-up take it in turn rather than each waiting
    for the other's rows). PostgreSQL; SQLite has one writer."""
    if connection.dialect.name == "postgresql":
        await connection.execute(
            sa.text("LOCK TABLE challenge_counters IN SHARE ROW EXCLUSIVE MODE")
        )


async def rebuild(connection: AsyncConnection, challenge: Challenge, now: datetime) -> None:
    """The challenge's counters built from the ledger, for the periods that hold the last
    ``REBUILD_DAYS`` days (the caller took ``lock`` first)."""
    await connection.execute(sa.delete(challenge_counters).where(K.challenge == challenge.slug))
    if not challenge.active:
        return
    low = challenge.period.start(now - timedelta(days=REBUILD_DAYS))
    high = challenge.period.end(challenge.period.start(now))
    if challenge.valid_from is not None:
        low = max(low, challenge.valid_from)
    if challenge.valid_until is not None:
        high = min(high, challenge.valid_until)
    if low >= high:
        return
    t, m = transfers, members
    r = transfers.alias("r")
    reversed_points = (
        sa.select(sa.func.coalesce(sa.func.sum(r.c.points), 0))
        .where(r.c.reverses_id == t.c.id)
        .scalar_subquery()
    )
    query = (
        sa.select(
            sa.func.coalesce(m.c.merged_into, t.c.member_id).label("member_id"),
            t.c.partner,
            t.c.points,
            t.c.created_at,
            reversed_points.label("reversed"),
        )
        .select_from(t.join(m, m.c.id == t.c.member_id))
        .where(
            t.c.kind == "earn",
            sa.not_(t.c.idempotency_scope.startswith(f"{BONUS_SCOPE}:")),
            t.c.created_at >= low,
            t.c.created_at < high,
        )
    )
    if challenge.partner is not None:
        query = query.where(t.c.partner == challenge.partner)
    counted: dict[tuple[str, datetime, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in await connection.execute(query):
        left = int(row.points) - int(row.reversed)
        if left <= 0:
            continue
        key = (str(row.member_id), challenge.period.start(row.created_at), str(row.partner))
        counted[key][0] += 1
        counted[key][1] += left
    if counted:
        await connection.execute(
            sa.insert(challenge_counters),
            [
                {
                    "challenge": challenge.slug,
                    "member_id": member_id,
                    "period_start": start,
                    "partner": partner,
                    "visits": visits,
                    "points": points,
                }
                for (member_id, start, partner), (visits, points) in sorted(counted.items())
            ],
        )
    await connection.execute(
        sa.update(challenges).where(challenges.c.slug == challenge.slug).values(counted_at=now)
    )
