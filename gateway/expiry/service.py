"""Point expiry: what expires when, the job that posts it to breakage, and the breakage report.

Each partner sets a policy in its ``[expiry]`` table (see ``partners/expiry.py``): points
expire N months after they were earned, or all of a member's points at the partner expire
after N months without any transfer of the member anywhere in the coalition, or never.
Pools kept in a partner's own system have no wallets here and are left alone.

**Oldest first, without lot tables.** Points are spent oldest first (FIFO). Number the
points a wallet was ever credited in the order they came in. A debit takes the oldest
points still there, and a wallet never goes below zero, so at every moment the points
taken so far are exactly the first D of that sequence, where D is everything debited so
far: a debit at time s takes the points numbered D(s-)+1 .. D(s), which exist because
D(s) <= C(s) (the points credited by s), and every point credited after s comes later in
the sequence. Hence at a moment T the points still unspent from the credits made up to a
cutoff c (c <= T) number

    max(0, C(c) - D(T))

where C(c) is the sum of the credits up to c and D(T) the sum of all debits up to T,
earlier expiries included. Since the wallet's balance is C(T) - D(T), the same number is
``max(0, balance - credits made after c)``: what the wallet holds beyond its recent
credits is old. The unspent points are the newest ``balance`` points, so walking the
credits from the newest back until they cover the balance gives the lots still held and,
with the policy, when each expires.

What counts as a credit (a wallet entry is one of these, in this order of rules):

- a merge's two legs are left out: a member's history includes the members merged into
  it, so their points keep the age they had;
- points set aside by a hold are a debit; those that come back (a voided or expired hold,
  the rest of a partial capture) undo the most recent debits instead of being new credits,
  so a hold never makes points younger;
- a reversal that takes points back out of a wallet (of an earn, or of the points a
  conversion delivered) removes them from the credit it reverses, at that credit's time:
  those points were never the member's;
- any other credit (an earn, a conversion's delivered points, a gift received, a reversal
  that gives points back such as a refunded redemption or an undone expiry) is a new
  credit at its own time, and any other debit (a redemption, a conversion, a gift given,
  an expiry) a debit.

**The job** (``expire_due``) looks at the wallets with points at partners whose points
expire, first with one cheap query per page of wallets, then, for each wallet that looks
due, in a transaction that locks the member (as every posting does) and the wallet,
computes what is due again and posts one EXPIRY transfer (wallet to the pool's BREAKAGE).
Its idempotency key is derived from the member, the pool, the expiry moment of the newest
points it expires and how many expiries the wallet had before, so a second run, a
concurrent one or one in another process posts nothing new: it either waits for the lock
and then finds nothing due, or claims the same key and gets the first posting back.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.kernel.errors import DomainError, ErrorCode
from gateway.kernel.validation import invalid
from gateway.ledger import locks
from gateway.ledger import store as repository
from gateway.ledger.rules import AccountCode, TransferKind, expiry_legs
from gateway.ledger.service import LedgerService
from gateway.ledger.tables import accounts, entries, members, transfers
from partners.config.expiry import ExpiryPolicy, ExpiryRule

log = logging.getLogger("gateway.expiry.service")

PAGE = 500  # wallets looked at per query
# Month ends make "N months after" uneven by up to three days; the first, cheap selection
# of wallets is this much generous, and the exact check is made under the lock.
SLACK = timedelta(days=4)
# Transfers whose wallet legs are neither credits nor plain debits (see the module's doc).
NOT_CREDITS = (
    TransferKind.MERGE.value,
    TransferKind.HOLD.value,
    TransferKind.RELEASE.value,
    TransferKind.CAPTURE.value,
)
original = transfers.alias("original")


class Expiring(NamedTuple):
    """Points of a wallet that expire at one moment."""

    points: int
    expires_at: datetime


@dataclass(frozen=True)
class Breakage:
    """A partner's points that expired unspent in a period, and their worth."""

    partner: str
    points: int  # net of expiries undone by a reversal
    value: Decimal  # in the settlement currency, at the partner's point value
    currency: str
    expiries: int  # EXPIRY transfers in the period
    since: datetime | None
    until: datetime | None
    policy: ExpiryPolicy | None


@dataclass(frozen=True)
class _Due:
    points: int
    expires_at: datetime  # of the newest points that expire now
    reason: str


class ExpiryService:
    def __init__(self, ledger: LedgerService) -> None:
        self.ledger = ledger
        self.uow = ledger.uow

    def policy(self, pool: str) -> ExpiryPolicy | None:
        """The pool's policy when its points expire in the gateway; None otherwise."""
        partner = self.ledger.coalition.partner(pool)
        if partner is None or partner.pool.remote or partner.expiry is None:
            return None
        return partner.expiry if partner.expiry.expires else None

    # What expires when

    async def upcoming(self, member_id: str, pool: str) -> list[Expiring]:
        """The member's points at ``pool`` by when they expire, oldest first. Points whose
        moment has passed are listed until the job has posted them. Held points are not
        listed: they come back as the oldest if their hold is released."""
        self.ledger.partner(pool)
        policy = self.policy(pool)
        if policy is None:
            return []

        async def work(connection: AsyncConnection) -> list[Expiring]:
            found = (await _live_ids(connection, [member_id])).get(member_id)
            if found is None:
                raise DomainError(ErrorCode.UNKNOWN_MEMBER, "No such member.", ("member_id",))
            _, ids = found
            balance = await _balance(connection, ids, pool)
            if balance <= 0:
                return []
            return await _schedule(connection, ids, pool, policy, balance)

        return await self.uow.read(work)

    # The job

    async def expire_due(self, limit: int = 10_000) -> int:
        """Post every expiry due now, at most ``limit`` of them (one per wallet); returns
        how many this call posted. Safe to run twice or at once in several processes."""
        posted = 0
        now = self.ledger.clock()
        for slug in sorted(self.ledger.coalition.partners):
            policy = self.policy(slug)
            if policy is None:
                continue
            after = 0
            while posted < limit:
                after, candidates = await self._next_page(slug, policy, after, now)
                if not after:
                    break
                for member_id in candidates:
                    if posted >= limit:
                        break
                    if await self._expire(slug, policy, member_id):
                        posted += 1
        if posted:
            log.info("posted %d point expir%s", posted, "y" if posted == 1 else "ies")
        return posted

    async def _next_page(
        self, pool: str, policy: ExpiryPolicy, after: int, now: datetime
    ) -> tuple[int, list[str]]:
        """The wallets after account ``after`` that may be due: (the last account id
        looked at, or 0 when there are no more; their members)."""

        async def work(connection: AsyncConnection) -> tuple[int, list[str]]:
            page = await _wallet_page(connection, pool, after)
            if not page:
                return 0, []
            wallets = [(member_id, balance) for _, member_id, balance in page]
            return page[-1][0], await _candidates(connection, pool, policy, wallets, now)

        return await self.uow.read(work)

    async def _expire(self, pool: str, policy: ExpiryPolicy, member_id: str) -> bool:
        ledger = self.ledger

        async def work(connection: AsyncConnection) -> bool:
            live = await locks.live_member(connection, member_id)
            if live is None:
                return False
            ids = [live, *await repository.merged_into(connection, live)]
            balance = await _lock_wallet(connection, live, pool)
            if balance <= 0:
                return False
            now = ledger.clock()
            due = await _due(connection, ids, pool, policy, balance, now)
            if due is None:
                return False
            sequence = 1 + await _expiries_of(connection, ids, pool)
            stamp = due.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
            claim = ledger.kernel.claim(
                f"expiry:{pool}",
                f"{live}:{stamp}:{sequence}",
                {"member": live, "pool": pool, "expires_at": stamp, "sequence": sequence},
            )
            values = {
                "kind": TransferKind.EXPIRY.value,
                "partner": pool,
                "points": due.points,
                "reason": due.reason,
            }
            posting = await ledger.kernel.post(
                connection, claim, values, live, expiry_legs(pool, due.points)
            )
            return not posting.replayed

        try:
            return await self.uow.write(work)
        except DomainError as error:  # nothing was posted; the next run tries again
            log.warning("expiring points of %s at %s failed: %s", member_id, pool, error.message)
            return False

    # The report

    async def breakage(
        self, partner: str, since: datetime | None = None, until: datetime | None = None
    ) -> Breakage:
        """Points of ``partner`` that expired in [since, until), net of expiries undone."""
        config = self.ledger.partner(partner)
        for name, moment in (("since", since), ("until", until)):
            if moment is not None and moment.utcoffset() is None:
                raise invalid(name, f"{name} needs a UTC offset.")
        if since is not None and until is not None and until <= since:
            raise invalid("until", "until must be after since.")

        async def work(connection: AsyncConnection) -> tuple[int, int]:
            query = (
                sa.select(
                    sa.func.coalesce(sa.func.sum(entries.c.amount), 0),
                    sa.func.count(transfers.c.id).filter(
                        transfers.c.kind == TransferKind.EXPIRY.value
                    ),
                )
                .select_from(entries)
                .join(accounts, accounts.c.id == entries.c.account_id)
                .join(transfers, transfers.c.id == entries.c.transfer_id)
                .where(
                    entries.c.pool == partner,
                    accounts.c.code == AccountCode.BREAKAGE.value,
                    accounts.c.member_id.is_(None),
                )
            )
            if since is not None:
                query = query.where(transfers.c.created_at >= since)
            if until is not None:
                query = query.where(transfers.c.created_at < until)
            points, count = (await connection.execute(query)).one()
            return int(points), int(count)

        points, count = await self.uow.read(work)
        return Breakage(
            partner=partner,
            points=points,
            value=config.point_value * points,
            currency=self.ledger.coalition.settlement_currency,
            expiries=count,
            since=since,
            until=until,
            policy=self.policy(partner),
        )


# Members


async def _live_ids(
    connection: AsyncConnection, member_ids: Sequence[str]
) -> dict[str, tuple[str, list[str]]]:
    """Per given id: the member it is now, and that member's ids (its own first, then
    those of the members merged into it)."""
    rows = {
        row.id: row
        for row in await connection.execute(
            sa.select(members.c.id, members.c.merged_into).where(members.c.id.in_(member_ids))
        )
    }
    live = {
        given: str(row.merged_into or row.id) for given in member_ids if (row := rows.get(given))
    }
    survivors = set(live.values())
    merged: dict[str, list[str]] = defaultdict(list)
    result = await connection.execute(
        sa.select(members.c.id, members.c.merged_into).where(members.c.merged_into.in_(survivors))
    )
    for row in result:
        merged[row.merged_into].append(str(row.id))
    return {given: (member, [member, *merged[member]]) for given, member in live.items()}


# Wallets


async def _wallet_page(
    connection: AsyncConnection, pool: str, after: int
) -> list[tuple[int, str, int]]:
    """The next wallets with points at ``pool`` by account id: (id, member, balance)."""
    result = await connection.execute(
        sa.select(accounts.c.id, accounts.c.member_id, accounts.c.balance)
        .where(
            accounts.c.id > after,
            accounts.c.pool == pool,
            accounts.c.member_id.isnot(None),
            accounts.c.balance > 0,
        )
        .order_by(accounts.c.id)
        .limit(PAGE)
    )
    return [(int(row.id), str(row.member_id), int(row.balance)) for row in result]


async def _balance(connection: AsyncConnection, member_ids: Sequence[str], pool: str) -> int:
    total = await connection.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(accounts.c.balance), 0)).where(
            accounts.c.member_id.in_(member_ids), accounts.c.pool == pool
        )
    )
    return int(total or 0)


async def _lock_wallet(connection: AsyncConnection, member_id: str, pool: str) -> int:
    balance = await connection.scalar(
        sa.select(accounts.c.balance)
        .where(accounts.c.member_id == member_id, accounts.c.pool == pool)
        .with_for_update()
    )
    return int(balance or 0)


async def _expiries_of(connection: AsyncConnection, member_ids: Sequence[str], pool: str) -> int:
    count = await connection.scalar(
        sa.select(sa.func.count()).where(
            transfers.c.member_id.in_(member_ids),
            transfers.c.partner == pool,
            transfers.c.kind == TransferKind.EXPIRY.value,
        )
    )
    return int(count or 0)


# Credits and activity


def _credit_query(member_ids: Sequence[str], pool: str) -> Any:
    """The wallet entries that may be credits, with what classifies them."""
    return (
        sa.select(
            entries.c.member_id,
            entries.c.amount,
            transfers.c.kind,
            transfers.c.created_at,
            original.c.kind.label("original_kind"),
            original.c.created_at.label("original_at"),
        )
        .select_from(entries)
        .join(transfers, transfers.c.id == entries.c.transfer_id)
        .outerjoin(original, original.c.id == transfers.c.reverses_id)
        .where(
            entries.c.member_id.in_(member_ids),
            entries.c.pool == pool,
            transfers.c.kind.not_in(NOT_CREDITS),
        )
    )


def credit_of(
    amount: int,
    kind: str,
    at: datetime,
    original_kind: str | None,
    original_at: datetime | None,
) -> tuple[datetime, int] | None:
    """A wallet entry (not of a merge or a hold) as a credit (its time and signed points),
    or None for a debit. See the module's doc for the rules."""
    if kind == TransferKind.REVERSAL.value and amount < 0:
        if original_at is None or original_kind == TransferKind.CAPTURE.value:
            return None
        return original_at, amount  # points taken back out of the credit they came with
    if amount > 0:
        return at, amount
    return None


def unspent_lots(
    balance: int, credits: Iterable[tuple[datetime, int]]
) -> list[tuple[datetime, int]]:
    """The credits still (partly) held, oldest first, as (credited at, points): the newest
    ``balance`` points, since spending takes the oldest first."""
    by_time: dict[datetime, int] = defaultdict(int)
    for at, points in credits:
        by_time[at] += points
    lots: list[tuple[datetime, int]] = []
    remaining = balance
    for at in sorted(by_time, reverse=True):
        if remaining <= 0:
            break
        taken = min(max(by_time[at], 0), remaining)
        if taken:
            lots.append((at, taken))
            remaining -= taken
    if remaining > 0 and lots:
        # Never so for a consistent history; if it were, the rest is the oldest.
        at, points = lots[-1]
        lots[-1] = (at, points + remaining)
    lots.reverse()
    return lots


async def _credits(
    connection: AsyncConnection, member_ids: Sequence[str], pool: str
) -> list[tuple[datetime, int]]:
    found = []
    for row in await connection.execute(_credit_query(member_ids, pool)):
        credit = credit_of(row.amount, row.kind, row.created_at, row.original_kind, row.original_at)
        if credit is not None:
            found.append(credit)
    return found


def _activity_queries(member_ids: Sequence[str]) -> tuple[Any, Any]:
    """Latest transfer per member other than an expiry: as the transfer's member, and by an
    entry in the member's wallet (a gift received)."""
    not_expiry = transfers.c.kind != TransferKind.EXPIRY.value
    own = (
        sa.select(transfers.c.member_id, sa.func.max(transfers.c.created_at).label("at"))
        .where(transfers.c.member_id.in_(member_ids), not_expiry)
        .group_by(transfers.c.member_id)
    )
    touched = (
        sa.select(entries.c.member_id, sa.func.max(transfers.c.created_at).label("at"))
        .select_from(entries)
        .join(transfers, transfers.c.id == entries.c.transfer_id)
        .where(entries.c.member_id.in_(member_ids), not_expiry)
        .group_by(entries.c.member_id)
    )
    return own, touched


async def _last_activity(
    connection: AsyncConnection, member_ids: Sequence[str]
) -> dict[str, datetime]:
    latest: dict[str, datetime] = {}
    for query in _activity_queries(member_ids):
        for row in await connection.execute(query):
            if row.at is not None and (
                row.member_id not in latest or row.at > latest[row.member_id]
            ):
                latest[row.member_id] = row.at
    return latest


async def _schedule(
    connection: AsyncConnection,
    member_ids: Sequence[str],
    pool: str,
    policy: ExpiryPolicy,
    balance: int,
) -> list[Expiring]:
    """The wallet's points by when they expire, oldest first."""
    if policy.rule is ExpiryRule.AFTER_INACTIVITY:
        latest = (await _last_activity(connection, member_ids)).values()
        if not latest:
            return []
        return [Expiring(balance, policy.expires_at(max(latest)))]
    by_moment: dict[datetime, int] = defaultdict(int)
    for at, points in unspent_lots(balance, await _credits(connection, member_ids, pool)):
        by_moment[policy.expires_at(at)] += points
    return [Expiring(points, moment) for moment, points in sorted(by_moment.items())]


async def _due(
    connection: AsyncConnection,
    member_ids: Sequence[str],
    pool: str,
    policy: ExpiryPolicy,
    balance: int,
    now: datetime,
) -> _Due | None:
    schedule = await _schedule(connection, member_ids, pool, policy, balance)
    due = [lot for lot in schedule if lot.expires_at <= now]
    if not due:
        return None
    points = sum(lot.points for lot in due)
    newest = due[-1].expires_at
    if policy.rule is ExpiryRule.AFTER_INACTIVITY:
        since = newest.date().isoformat()
        reason = (
            f"No activity in the coalition for {policy.months} months: points expired on {since}"
        )
    else:
        reason = (
            f"Points expired {policy.months} months after they were earned (the newest on "
            f"{newest.date().isoformat()})"
        )
    return _Due(points, newest, reason)


async def _candidates(
    connection: AsyncConnection,
    pool: str,
    policy: ExpiryPolicy,
    wallets: Sequence[tuple[str, int]],
    now: datetime,
) -> list[str]:
    """Of ``wallets`` (member, balance), the members whose points may be due: a superset,
    found with one or two grouped queries; the exact check is made under the lock."""
    owners = await _live_ids(connection, [member_id for member_id, _ in wallets])
    survivor_of = {member_id: live for live, ids in owners.values() for member_id in ids}
    all_ids = sorted(survivor_of)
    cutoff = policy.cutoff(now, SLACK)
    if policy.rule is ExpiryRule.AFTER_INACTIVITY:
        latest: dict[str, datetime] = {}
        for member_id, at in (await _last_activity(connection, all_ids)).items():
            live = survivor_of[member_id]
            if live not in latest or at > latest[live]:
                latest[live] = at
        return [
            member_id
            for member_id, _ in wallets
            if member_id in latest and latest[member_id] <= cutoff
        ]
    # What a wallet holds beyond its credits since the cutoff is old (see the module's doc).
    credited = (
        sa.select(entries.c.member_id, sa.func.sum(entries.c.amount).label("points"))
        .select_from(entries)
        .join(transfers, transfers.c.id == entries.c.transfer_id)
        .outerjoin(original, original.c.id == transfers.c.reverses_id)
        .where(
            entries.c.member_id.in_(all_ids),
            entries.c.pool == pool,
            transfers.c.kind.not_in(NOT_CREDITS),
            sa.or_(
                sa.and_(entries.c.amount > 0, transfers.c.created_at > cutoff),
                sa.and_(
                    transfers.c.kind == TransferKind.REVERSAL.value,
                    entries.c.amount < 0,
                    original.c.kind != TransferKind.CAPTURE.value,
                    original.c.created_at > cutoff,
                ),
            ),
        )
        .group_by(entries.c.member_id)
    )
    recent: dict[str, int] = defaultdict(int)
    for row in await connection.execute(credited):
        recent[survivor_of[row.member_id]] += int(row.points)
    return [member_id for member_id, balance in wallets if balance > recent[member_id]]
