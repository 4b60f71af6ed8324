"""What expires when: the oldest-first rules over a wallet's credits, and a member's schedule.

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

"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.expiry.wallets import live_ids, wallet_balance
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.kernel.unit_of_work import UnitOfWork
from gateway.ledger.rules import TransferKind
from gateway.ledger.service import LedgerService
from gateway.ledger.tables import entries, transfers
from partners.config.expiry import ExpiryPolicy, ExpiryRule

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
class Due:
    """What a wallet has due now: its points, when the newest expired, and why."""

    points: int
    expires_at: datetime  # of the newest points that expire now
    reason: str


class Schedules:
    """The policies and schedules part of the expiry service."""

    ledger: LedgerService
    uow: UnitOfWork

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
            found = (await live_ids(connection, [member_id])).get(member_id)
            if found is None:
                raise DomainError(ErrorCode.UNKNOWN_MEMBER, "No such member.", ("member_id",))
            _, ids = found
            balance = await wallet_balance(connection, ids, pool)
            if balance <= 0:
                return []
            return await schedule_of(connection, ids, pool, policy, balance)

        return await self.uow.read(work)


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


async def last_activity(
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


async def schedule_of(
    connection: AsyncConnection,
    member_ids: Sequence[str],
    pool: str,
    policy: ExpiryPolicy,
    balance: int,
) -> list[Expiring]:
    """The wallet's points by when they expire, oldest first."""
    if policy.rule is ExpiryRule.AFTER_INACTIVITY:
        latest = (await last_activity(connection, member_ids)).values()
        if not latest:
            return []
        return [Expiring(balance, policy.expires_at(max(latest)))]
    by_moment: dict[datetime, int] = defaultdict(int)
    for at, points in unspent_lots(balance, await _credits(connection, member_ids, pool)):
        by_moment[policy.expires_at(at)] += points
    return [Expiring(points, moment) for moment, points in sorted(by_moment.items())]


async def due_now(
    connection: AsyncConnection,
    member_ids: Sequence[str],
    pool: str,
    policy: ExpiryPolicy,
    balance: int,
    now: datetime,
) -> Due | None:
    schedule = await schedule_of(connection, member_ids, pool, policy, balance)
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
    return Due(points, newest, reason)
