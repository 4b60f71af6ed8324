"""The physical reference for bulk earning: a batch of purchases posted over asyncpg with a
handful of set-based statements in one transaction, writing the rows the gateway writes for
the same earns (gateway/earning/purchases.py, gateway/ledger/posting_sql.py, the programme
observer, gateway/events/outbox.py):

1. the members locked (``FOR NO KEY UPDATE``, in id order, as ``locks.live_member``);
2. one read of what the rules and the answers need per member (bought here before, the
   stored tier, the running qualifying value, points held, owed and pending);
3. in Python (bench/bulk_plan.py): each line's points and breakdown, and the tiers reached;
4. every key claimed at once (``INSERT INTO transfers ... SELECT FROM unnest(...) ON
   CONFLICT DO NOTHING RETURNING``);
5. each wallet credited once (its lines summed) and both legs of every line entered, each
   wallet entry's ``balance_after`` a running sum over the member's lines in batch order;
6. the purchases (breakdown, wallet), tier contributions, ``tier_values`` (one row per
   member), ``member_tiers`` (members whose tier changed), challenge counters (summed per
   challenge, member, period and partner) and one outbox event per transfer.

A key already taken rolls the batch back; it is then posted again without those lines
(they are answered as replays: not posted twice).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg  # type: ignore[import-untyped]  # ships no type information

from bench.bulk_plan import DirectLine, MemberState, Plan, Window, plain, plan, wallet_json
from gateway.tiers.rules import TierState, window_start
from partners.config.challenges import Period
from partners.config.coalition import Coalition

# Never the gateway's ``earn:<partner>``, so direct and gateway earns can not collide.
DIRECT_SCOPE = "bench-direct"

LOCK_MEMBERS = (
    "SELECT id, merged_into FROM members WHERE id = ANY($1::varchar[]) "
    'ORDER BY id COLLATE "C" FOR NO KEY UPDATE OF members'
)
MEMBER_STATE = """
SELECT m.id,
    EXISTS (SELECT 1 FROM purchases p WHERE p.member_id = m.id AND p.partner = $2) AS before,
    (SELECT count(*) FROM purchases p
     WHERE p.member_id = m.id AND p.partner = $2 AND p.created_at >= $3) AS in_period,
    (SELECT COALESCE(SUM(p.points - p.clawed_back), 0) FROM purchases p
     WHERE p.member_id = m.id AND p.partner = $2 AND p.status = 'pending') AS pending,
    (SELECT COALESCE(SUM(h.points), 0) FROM holds h
     WHERE h.member_id = m.id AND h.partner = $2 AND h.status = 'authorized') AS held,
    (SELECT COALESCE(MAX(d.owed), 0) FROM wallet_debts d
     WHERE d.member_id = m.id AND d.pool = $2) AS owed,
    t.tier, t.since, t.review_at, t.downgrade_at,
    v.through, v.next_leave, v.points AS window_points
FROM unnest($1::varchar[]) AS m(id)
LEFT JOIN member_tiers t ON t.member_id = m.id
LEFT JOIN tier_values v ON v.member_id = m.id
"""
WINDOW_SUMS = """
SELECT member_id, partner, SUM(points) AS points, MIN(effective_at) AS first
FROM tier_contributions WHERE member_id = ANY($1::varchar[]) AND effective_at > $2
GROUP BY member_id, partner
"""
CLAIM = """
INSERT INTO transfers (kind, member_id, partner, points, purchase_amount, reason,
    idempotency_scope, idempotency_key, request_hash, created_at)
SELECT 'earn', l.member_id, $1, l.points, l.amount, l.reason, $2, l.key, l.hash, $3
FROM unnest($4::varchar[], $5::bigint[], $6::varchar[], $7::varchar[], $8::varchar[],
    $9::varchar[]) WITH ORDINALITY AS l(member_id, points, amount, reason, key, hash, n)
ORDER BY l.n
ON CONFLICT (idempotency_scope, idempotency_key) DO NOTHING
RETURNING id, idempotency_key
"""
WALLETS_AND_ENTRIES = """
WITH l AS (
    SELECT * FROM unnest($1::bigint[], $2::varchar[], $3::bigint[])
        WITH ORDINALITY AS l(transfer_id, member_id, points, n)
), wallet AS (
    INSERT INTO accounts (pool, code, member_id, balance)
    SELECT $4, 'wallet', member_id, SUM(points) FROM l GROUP BY member_id
    ON CONFLICT (member_id, pool) WHERE member_id IS NOT NULL
    DO UPDATE SET balance = accounts.balance + excluded.balance
    RETURNING accounts.id, accounts.member_id, accounts.balance
), lines AS (
    SELECT l.transfer_id, l.n, l.member_id, l.points, wallet.id AS account_id,
        (wallet.balance - SUM(l.points) OVER (PARTITION BY l.member_id)
            + SUM(l.points) OVER (PARTITION BY l.member_id ORDER BY l.n))::bigint
            AS balance_after
    FROM l JOIN wallet ON wallet.member_id = l.member_id
), entered AS (
    INSERT INTO entries (transfer_id, account_id, pool, member_id, amount, balance_after)
    SELECT transfer_id, account_id, $4, member_id, amount, balance_after FROM (
        SELECT transfer_id, $5::bigint AS account_id, NULL::varchar AS member_id,
            -points AS amount, NULL::bigint AS balance_after, n, 0 AS leg FROM lines
        UNION ALL
        SELECT transfer_id, account_id, member_id, points, balance_after, n, 1 FROM lines
    ) legs ORDER BY n, leg
)
SELECT transfer_id, balance_after FROM lines
"""
PURCHASES = """
INSERT INTO purchases (transfer_id, member_id, partner, receipt, amount, points, breakdown,
    wallet, status, returned_amount, clawed_back, uncollected, created_at)
SELECT l.transfer_id, l.member_id, $1, l.key, l.amount, l.points, l.breakdown, l.wallet,
    'available', '0', 0, 0, $2
FROM unnest($3::bigint[], $4::varchar[], $5::varchar[], $6::varchar[], $7::bigint[],
    $8::text[], $9::text[]) WITH ORDINALITY
    AS l(transfer_id, member_id, key, amount, points, breakdown, wallet, n)
ORDER BY l.n
"""
CONTRIBUTIONS = """
INSERT INTO tier_contributions (member_id, partner, effective_at, points, transfer_id)
SELECT l.member_id, $1, $2, l.points, l.transfer_id
FROM unnest($3::varchar[], $4::bigint[], $5::bigint[]) WITH ORDINALITY
    AS l(member_id, points, transfer_id, n)
ORDER BY l.n
"""
TIER_VALUES = """
INSERT INTO tier_values (member_id, through, next_leave, points)
SELECT * FROM unnest($1::varchar[], $2::timestamptz[], $3::timestamptz[], $4::varchar[])
ON CONFLICT (member_id) DO UPDATE SET through = excluded.through,
    next_leave = excluded.next_leave, points = excluded.points
"""
MEMBER_TIERS = """
INSERT INTO member_tiers (member_id, tier, since, review_at, downgrade_at, updated_at)
SELECT m, t, s, r, d, $6 FROM unnest($1::varchar[], $2::varchar[], $3::timestamptz[],
    $4::timestamptz[], $5::timestamptz[]) AS x(m, t, s, r, d)
ON CONFLICT (member_id) DO UPDATE SET tier = excluded.tier, since = excluded.since,
    review_at = excluded.review_at, downgrade_at = excluded.downgrade_at,
    updated_at = excluded.updated_at
"""
COUNTERS = """
INSERT INTO challenge_counters (challenge, member_id, period_start, partner, visits, points)
SELECT c.slug, l.member_id,
    CASE c.period WHEN 'week' THEN $3::timestamptz WHEN 'month' THEN $4::timestamptz
        ELSE $5::timestamptz END,
    $1::varchar, COUNT(*), SUM(l.points)
FROM unnest($6::varchar[], $7::bigint[]) AS l(member_id, points)
CROSS JOIN challenges c
WHERE c.active AND (c.partner IS NULL OR c.partner = $1::varchar)
    AND (c.valid_from IS NULL OR c.valid_from <= $2)
    AND (c.valid_until IS NULL OR c.valid_until > $2)
GROUP BY 1, 2, 3
ON CONFLICT (challenge, member_id, period_start, partner) DO UPDATE SET
    visits = challenge_counters.visits + excluded.visits,
    points = challenge_counters.points + excluded.points
"""
EVENTS = """
INSERT INTO outbox (type, member_id, partner, transfer_id, points, occurred_at, actor, data)
SELECT 'points.earned', l.member_id, $1, l.transfer_id, l.points, $2, $3, l.data::json
FROM unnest($4::varchar[], $5::bigint[], $6::bigint[], $7::text[]) WITH ORDINALITY
    AS l(member_id, transfer_id, points, data, n)
ORDER BY l.n
"""
ISSUANCE_ACCOUNTS = "SELECT pool, id FROM accounts WHERE member_id IS NULL AND code = 'issuance'"


@dataclass
class Posted:
    """A batch's outcome: lines posted, lines refused (index, error code), keys found taken."""

    posted: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)
    replayed: list[str] = field(default_factory=list)
    seconds: float = 0.0  # BEGIN to COMMIT of the transaction that posted


class KeysTaken(Exception):
    def __init__(self, keys: set[str]) -> None:
        super().__init__(f"{len(keys)} idempotency keys already taken")
        self.keys = keys


async def issuance_accounts(connection: asyncpg.Connection) -> dict[str, int]:
    """Each partner's issuance account id: the other leg of every earn."""
    return {row["pool"]: row["id"] for row in await connection.fetch(ISSUANCE_ACCOUNTS)}


async def post_batch(
    connection: asyncpg.Connection,
    coalition: Coalition,
    partner: str,
    lines: list[DirectLine],
    actor: str | None = None,
    scope: str = f"{DIRECT_SCOPE}:",
) -> Posted:
    """Post ``lines`` at ``partner`` in one transaction (two when some keys were taken);
    the idempotency scope is ``scope`` + partner."""
    config = coalition.partners[partner]
    if config.pool.remote or config.earning.return_window.total_seconds() > 0:
        raise ValueError(f"{partner}: remote pools and pending points are not posted here")
    issuance = (await issuance_accounts(connection))[partner]
    taken: set[str] = set()
    for _ in range(2):
        batch = [line for line in lines if line.key not in taken]
        started = time.perf_counter()
        try:
            async with connection.transaction():
                posted = await _post(
                    connection, coalition, partner, batch, issuance, actor, scope + partner
                )
        except KeysTaken as error:
            taken |= error.keys
            continue
        posted.seconds = time.perf_counter() - started
        indexes = [i for i, line in enumerate(lines) if line.key not in taken]
        posted.failed = [(indexes[i], code) for i, code in posted.failed]
        posted.replayed = sorted(taken)
        return posted
    raise RuntimeError("keys were taken twice while posting one batch")


async def _post(
    connection: asyncpg.Connection,
    coalition: Coalition,
    partner: str,
    lines: list[DirectLine],
    issuance: int,
    actor: str | None,
    scope: str,
) -> Posted:
    now = datetime.now(UTC)
    members = sorted({line.member_id for line in lines})
    live = {
        row["id"]
        for row in await connection.fetch(LOCK_MEMBERS, members)
        if row["merged_into"] is None  # merged members are refused: the bench has none
    }
    states = await _states(connection, coalition, partner, sorted(live), now)
    planned = plan(coalition, partner, lines, states, now)
    result = Posted(failed=planned.failed)
    if not planned.lines:
        return result
    rows = planned.lines
    claimed = await connection.fetch(
        CLAIM,
        partner,
        scope,
        now,
        [r.member_id for r in rows],
        [r.points for r in rows],
        [str(r.amount) for r in rows],
        [r.reason for r in rows],
        [r.key for r in rows],
        [r.request_hash for r in rows],
    )
    ids = {row["idempotency_key"]: row["id"] for row in claimed}
    if len(ids) < len(rows):
        raise KeysTaken({r.key for r in rows} - set(ids))
    transfer_ids = [ids[r.key] for r in rows]
    balances = {
        row["transfer_id"]: row["balance_after"]
        for row in await connection.fetch(
            WALLETS_AND_ENTRIES,
            transfer_ids,
            [r.member_id for r in rows],
            [r.points for r in rows],
            partner,
            issuance,
        )
    }
    await connection.execute(
        PURCHASES,
        partner,
        now,
        transfer_ids,
        [r.member_id for r in rows],
        [r.key for r in rows],
        [str(r.amount) for r in rows],
        [r.points for r in rows],
        [r.breakdown for r in rows],
        [
            wallet_json(r.member_id, partner, balances[t], states[r.member_id])
            for r, t in zip(rows, transfer_ids, strict=True)
        ],
    )
    await _programme(connection, coalition, partner, planned, transfer_ids, now)
    await connection.execute(
        EVENTS,
        partner,
        now,
        actor,
        [r.member_id for r in rows],
        transfer_ids,
        [r.points for r in rows],
        [_event_data(r.amount, r.reason) for r in rows],
    )
    result.posted = len(rows)
    return result


async def _programme(
    connection: asyncpg.Connection,
    coalition: Coalition,
    partner: str,
    planned: Plan,
    transfer_ids: list[int],
    now: datetime,
) -> None:
    """The tier side and the challenge counters of the posted lines."""
    rows = planned.lines
    members, points = [r.member_id for r in rows], [r.points for r in rows]
    await connection.execute(CONTRIBUTIONS, partner, now, members, points, transfer_ids)
    if coalition.tiers is not None:
        windows = sorted(planned.windows.items())
        await connection.execute(
            TIER_VALUES,
            [member for member, _ in windows],
            [w.through for _, w in windows],
            [w.next_leave for _, w in windows],
            [json.dumps(w.points, separators=(",", ":")) for _, w in windows],
        )
    if planned.tiers:
        changed = sorted(planned.tiers.items())
        await connection.execute(
            MEMBER_TIERS,
            [member for member, _ in changed],
            [s.tier for _, s in changed],
            [s.since or now for _, s in changed],
            [s.review_at for _, s in changed],
            [s.downgrade_at for _, s in changed],
            now,
        )
    await connection.execute(
        COUNTERS,
        partner,
        now,
        Period.WEEK.start(now),
        Period.MONTH.start(now),
        Period.YEAR.start(now),
        members,
        points,
    )


async def _states(
    connection: asyncpg.Connection,
    coalition: Coalition,
    partner: str,
    members: list[str],
    now: datetime,
) -> dict[str, MemberState]:
    frequency = coalition.partners[partner].earning.frequency_bonus
    since = frequency.period.start(now) if frequency is not None else now
    rows = await connection.fetch(MEMBER_STATE, members, partner, since)
    tiers = coalition.tiers
    start = window_start(tiers, now) if tiers is not None else now
    windows: dict[str, Window] = {}
    rebuild: list[str] = []
    for row in rows:
        through, following = row["through"], row["next_leave"]
        if through is None or through > start or (following is not None and following <= start):
            rebuild.append(row["id"])
        else:
            windows[row["id"]] = Window(start, following, dict(json.loads(row["window_points"])))
    if tiers is not None and rebuild:
        sums: dict[str, dict[str, int]] = defaultdict(dict)
        firsts: dict[str, datetime] = {}
        for row in await connection.fetch(WINDOW_SUMS, rebuild, start):
            sums[row["member_id"]][row["partner"]] = int(row["points"])
            first = firsts.get(row["member_id"])
            firsts[row["member_id"]] = row["first"] if first is None else min(first, row["first"])
        for member in rebuild:
            windows[member] = Window(start, firsts.get(member), plain(sums[member]))
    return {
        row["id"]: MemberState(
            earned_here_before=row["before"],
            purchases_in_period=int(row["in_period"]) if frequency is not None else 0,
            tier=(
                TierState(row["tier"], row["since"], row["review_at"], row["downgrade_at"])
                if row["tier"] is not None
                else None
            ),
            window=windows[row["id"]] if tiers is not None else None,
            owed=int(row["owed"]),
            held=int(row["held"]),
            pending=int(row["pending"]),
        )
        for row in rows
    }


def _event_data(amount: object, reason: str | None) -> str:
    """The ``points.earned`` event's data (gateway/ledger/transfer_events.py ``posted``)."""
    data: dict[str, object] = {"kind": "earn"}
    if reason is not None:
        data["reason"] = reason
    data["purchase_amount"] = str(amount)
    return json.dumps(data)
