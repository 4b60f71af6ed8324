"""The expiry job: find the wallets with points due, and post each one's EXPIRY transfer."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.expiry.schedule import NOT_CREDITS, Schedules, due_now, last_activity, original
from gateway.expiry.wallets import expiries_of, live_ids, lock_wallet, wallet_page
from gateway.kernel.errors import DomainError
from gateway.ledger import locks
from gateway.ledger import store as repository
from gateway.ledger.rules import TransferKind, expiry_legs
from gateway.ledger.tables import entries, transfers
from partners.config.expiry import ExpiryPolicy, ExpiryRule

log = logging.getLogger("gateway.expiry.service")

# Month ends make "N months after" uneven by up to three days; the first, cheap selection
# of wallets is this much generous, and the exact check is made under the lock.
SLACK = timedelta(days=4)


class Job(Schedules):
    """The job part of the expiry service."""

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
            page = await wallet_page(connection, pool, after)
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
            balance = await lock_wallet(connection, live, pool)
            if balance <= 0:
                return False
            now = ledger.clock()
            due = await due_now(connection, ids, pool, policy, balance, now)
            if due is None:
                return False
            sequence = 1 + await expiries_of(connection, ids, pool)
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


async def _candidates(
    connection: AsyncConnection,
    pool: str,
    policy: ExpiryPolicy,
    wallets: Sequence[tuple[str, int]],
    now: datetime,
) -> list[str]:
    """Of ``wallets`` (member, balance), the members whose points may be due: a superset,
    found with one or two grouped queries; the exact check is made under the lock."""
    owners = await live_ids(connection, [member_id for member_id, _ in wallets])
    survivor_of = {member_id: live for live, ids in owners.values() for member_id in ids}
    all_ids = sorted(survivor_of)
    cutoff = policy.cutoff(now, SLACK)
    if policy.rule is ExpiryRule.AFTER_INACTIVITY:
        latest: dict[str, datetime] = {}
        for member_id, at in (await last_activity(connection, all_ids)).items():
            live = survivor_of[member_id]
            if live not in latest or at > latest[live]:
                latest[live] = at
        return [
            member_id
            for member_id, _ in wallets
            if member_id in latest and latest[member_id] <= cutoff
        ]
    # What a wallet holds beyond its credits since the cutoff is old (see schedule.py's doc).
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
