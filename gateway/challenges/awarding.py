"""Awarding badges: what members met, each award claimed once with its bonus posted."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.challenges import counters as challenge_counters
from gateway.challenges.counters import BONUS_SCOPE
from gateway.challenges.standings import Award, Standings
from gateway.challenges.tables import challenge_awards
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.kernel.schema import insert_for
from gateway.ledger import locks
from gateway.ledger import store as repository
from gateway.ledger.locks import Lock
from gateway.ledger.rules import TransferKind, earn_legs
from partners.config.challenges import Challenge

log = logging.getLogger(__name__)


def bonus_key(challenge: str, member_id: str, period_start: datetime) -> str:
    return f"{challenge}:{member_id}:{period_start.date().isoformat()}"


@asynccontextmanager
async def _custom_plans(connection: AsyncConnection) -> AsyncIterator[None]:
    """On PostgreSQL, statements planned for the sizes of the arrays they are given. A
    prepared statement's generic plan (from its sixth run on) guesses ten elements, and can
    then join thousands of members by scanning a table once for each (measured: 1.2 s
    instead of 0.03 s for 3,700 counters' keys on a table not analysed yet)."""
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        await connection.execute(sa.text("SET LOCAL plan_cache_mode = force_custom_plan"))
    yield
    if postgres:
        await connection.execute(sa.text("SET LOCAL plan_cache_mode = DEFAULT"))


class Awarding(Standings):
    """The awarding part of the challenge service."""

    async def _due(
        self, connection: AsyncConnection, spans: Mapping[str, tuple[datetime, datetime]]
    ) -> dict[str, list[tuple[Challenge, datetime, int]]]:
        """What each survivor of ``spans`` (with the members merged into them) met and was
        not awarded yet, in every period that holds a moment of its ``(since, until)``:
        (challenge, period start, count) from the counters, per survivor in a fixed order
        (so concurrent evaluations take the award rows' locks alike). A few statements
        whatever the number of members."""
        if not spans:
            return {}
        async with _custom_plans(connection):
            return await self._due_among(connection, spans)

    async def _due_among(
        self, connection: AsyncConnection, spans: Mapping[str, tuple[datetime, datetime]]
    ) -> dict[str, list[tuple[Challenge, datetime, int]]]:
        owner = await self._survivors(connection, list(spans))
        earliest = min(since for since, _ in spans.values())
        awarded = {
            (owner[award.member_id], award.challenge, award.period_start)
            for award in await self._awards(connection, list(owner), earliest)
        }
        running = await self._running(connection)
        # The periods of each span, worked out once per distinct span (a batch's events
        # mostly share their moments).
        periods: dict[tuple[datetime, datetime], list[tuple[Challenge, datetime]]] = {}
        candidates: dict[str, list[tuple[Challenge, datetime]]] = {}
        for survivor, span in spans.items():
            if span not in periods:
                periods[span] = [
                    (challenge, start)
                    for challenge in running
                    for start in challenge.period.starts(*span)
                    if challenge.window(start) is not None
                ]
            for challenge, start in periods[span]:
                if (survivor, challenge.slug, start) not in awarded:
                    candidates.setdefault(survivor, []).append((challenge, start))
        if not candidates:
            return {}
        counts = await challenge_counters.read_many(
            connection,
            [(s, c.slug, start) for s, pairs in candidates.items() for c, start in pairs],
        )
        due: dict[str, list[tuple[Challenge, datetime, int]]] = {}
        for survivor, pairs in candidates.items():
            for challenge, start in pairs:
                rows = counts.get((survivor, challenge.slug, start), [])
                progress = challenge_counters.progress(challenge, rows)
                if progress >= challenge.target:
                    due.setdefault(survivor, []).append((challenge, start, progress))
        return due

    async def meeting(
        self, connection: AsyncConnection, spans: Mapping[str, tuple[datetime, datetime]]
    ) -> set[str]:
        """The survivors of ``spans`` who met something not awarded yet (a read that needs
        no lock: ``award_due_many`` decides again under the members' locks)."""
        return set(await self._due(connection, spans))

    async def evaluate(self, member_id: str, at: datetime | None = None) -> list[Award]:
        """Award what the member met in the periods that hold ``at`` (now by default): the
        badges given by this call (empty when there was nothing new)."""
        moment = at or self.ledger.clock()
        return await self._evaluate(member_id, moment, moment)

    async def _evaluate(self, member_id: str, since: datetime, until: datetime) -> list[Award]:
        await self.start()

        async def look(connection: AsyncConnection) -> bool:
            members = await repository.members_by_id(connection, [member_id])
            if member_id not in members:
                raise DomainError(ErrorCode.UNKNOWN_MEMBER, "No such member.", ("member_id",))
            return bool(await self._due(connection, {members[member_id].id: (since, until)}))

        # Most evaluations (one after every earn) find nothing new: a read decides that,
        # without taking SQLite's single writer.
        if not await self.uow.read(look):
            return []

        async def work(connection: AsyncConnection) -> list[Award]:
            # Other postings and evaluations of the member go on (concurrent awards are
            # the unique key's to settle); a merge waits.
            survivor = await locks.live_member(connection, member_id, Lock.SHARED)
            if survivor is None:
                raise DomainError(ErrorCode.UNKNOWN_MEMBER, "No such member.", ("member_id",))
            return await self.award_due(connection, survivor, since, until)

        return await self.uow.write(work)

    async def award_due(
        self, connection: AsyncConnection, survivor: str, since: datetime, until: datetime
    ) -> list[Award]:
        """Inside a caller's write that holds the member's lock (at least ``Lock.SHARED``):
        award what ``survivor`` met in the periods that hold a moment of ``[since, until]``
        (the caller synced the configured challenges: ``start`` or ``prepare``)."""
        return await self.award_due_many(connection, {survivor: (since, until)})

    async def award_due_many(
        self, connection: AsyncConnection, spans: Mapping[str, tuple[datetime, datetime]]
    ) -> list[Award]:
        """``award_due`` for many survivors at once (``spans``: survivor -> (since,
        until)), the caller holding all their locks: the badges given, survivor by survivor
        in id order."""
        gone = locks.erased(connection)  # no badge, nor bonus, for an erased member
        spans = {member: span for member, span in spans.items() if member not in gone}
        due = await self._due(connection, spans)
        given = []
        for survivor in sorted(due):
            for challenge, start, progress in due[survivor]:
                award = await self._award(connection, survivor, challenge, start, progress)
                if award is not None:
                    given.append(award)
        return given

    async def _award(
        self,
        connection: AsyncConnection,
        member_id: str,
        challenge: Challenge,
        start: datetime,
        progress: int,
    ) -> Award | None:
        """Claim the award row (a concurrent evaluation that claimed it first makes this a
        no-op), then post its bonus in the same transaction."""
        now = self.ledger.clock()
        end = challenge.period.end(start)
        bonus_partner = challenge.bonus_partner if challenge.bonus_points > 0 else None
        config = self.ledger.coalition.partner(bonus_partner) if bonus_partner else None
        if bonus_partner is not None and (config is None or config.pool.remote):
            # The partner left the coalition or now keeps its points itself: the badge
            # still counts, the bonus cannot be paid here.
            log.warning(
                "challenge %s: no bonus for %s, '%s' is not a gateway pool",
                challenge.slug,
                member_id,
                bonus_partner,
            )
            bonus_partner = None
        bonus_points = challenge.bonus_points if bonus_partner is not None else 0
        statement = (
            insert_for(connection, challenge_awards)
            .values(
                challenge=challenge.slug,
                member_id=member_id,
                period_start=start,
                period_end=end,
                badge=challenge.badge,
                count=progress,
                bonus_points=bonus_points,
                bonus_partner=bonus_partner,
                awarded_at=now,
            )
            .on_conflict_do_nothing(index_elements=["challenge", "member_id", "period_start"])
            .returning(*challenge_awards.c)
        )
        row = (await connection.execute(statement)).first()
        if row is None:
            return None  # awarded by a concurrent evaluation
        award = Award.from_row(row)
        if bonus_partner is None:
            return award
        ledger = self.ledger
        key = bonus_key(challenge.slug, member_id, start)
        request = {"challenge": challenge.slug, "member": member_id, "points": bonus_points}
        claim = ledger.kernel.claim(f"{BONUS_SCOPE}:{bonus_partner}", key, request)
        values = {
            "kind": TransferKind.EARN.value,
            "partner": bonus_partner,
            "points": bonus_points,
            "reason": f"Challenge completed: {challenge.name}"[:500],
        }
        posting = await ledger.kernel.post(
            connection, claim, values, member_id, earn_legs(bonus_partner, bonus_points)
        )
        await connection.execute(
            sa.update(challenge_awards)
            .where(challenge_awards.c.id == award.id)
            .values(bonus_transfer_id=posting.transfer.id)
        )
        return replace(award, bonus_transfer_id=posting.transfer.id)

    async def evaluate_all(self, since: datetime) -> int:
        """The sweep: award every member whose counters met a challenge in a period from
        ``since`` to now and who has no badge for it yet (the ``challenge_awards`` consumer
        gives most badges as the earns happen; this catches up). Reads the counters of
        those periods, never the ledger. Safe to run twice or concurrently. The number of
        badges awarded."""
        await self.start()
        until = self.ledger.clock()
        if since.tzinfo is None:
            raise ValueError("since needs a UTC offset")

        async def work(connection: AsyncConnection) -> list[str]:
            found: set[str] = set()
            for challenge in await self._running(connection):
                for start in challenge.period.starts(since, until):
                    if challenge.window(start) is None:
                        continue
                    met = await challenge_counters.reached(connection, challenge, start)
                    if not met:
                        continue
                    awarded = await connection.execute(
                        sa.select(challenge_awards.c.member_id).where(
                            challenge_awards.c.challenge == challenge.slug,
                            challenge_awards.c.period_start == start,
                        )
                    )
                    done = {str(row.member_id) for row in awarded}
                    found.update(member for member, _ in met if member not in done)
            return sorted(found)

        awarded = 0
        for member_id in await self.uow.read(work):
            try:
                awarded += len(await self._evaluate(member_id, since, until))
            except DomainError as error:
                log.warning("challenges of member %s not evaluated: %s", member_id, error)
        return awarded
