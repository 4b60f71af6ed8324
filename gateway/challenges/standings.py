"""Members' standing: progress in the running challenges and the badges they earned."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.challenges import counters as challenge_counters
from gateway.challenges.sync import Configured, challenge_of
from gateway.challenges.tables import challenge_awards, challenges
from gateway.ledger import store as repository
from partners.config.challenges import Challenge

MAX_BADGES = 100


@dataclass(frozen=True)
class Award:
    """A badge a member earned: ``challenge`` met in the period from ``period_start``."""

    id: int
    challenge: str
    member_id: str
    badge: str
    period_start: datetime
    period_end: datetime
    count: int
    bonus_points: int
    bonus_partner: str | None
    bonus_transfer_id: int | None
    awarded_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Award:
        return cls(
            row.id,
            row.challenge,
            row.member_id,
            row.badge,
            row.period_start,
            row.period_end,
            row.count,
            row.bonus_points,
            row.bonus_partner,
            row.bonus_transfer_id,
            row.awarded_at,
        )


@dataclass(frozen=True)
class Progress:
    """Where a member stands in a challenge's current period."""

    challenge: Challenge
    count: int  # partners, visits or points so far
    target: int
    period_start: datetime
    period_end: datetime
    award: Award | None  # the badge of this period, once awarded

    @property
    def completed(self) -> bool:
        return self.award is not None or self.count >= self.target


class Standings(Configured):
    """The progress and badges part of the challenge service."""

    async def _members(self, connection: AsyncConnection, member_id: str) -> list[str]:
        """The member and every member merged into them."""
        return [member_id, *await repository.merged_into(connection, member_id)]

    async def _survivors(
        self, connection: AsyncConnection, survivors: Sequence[str]
    ) -> dict[str, str]:
        """``_members`` of many at once: each survivor and every member merged into one of
        them, mapped to their survivor."""
        return await repository.merged_into_many(connection, survivors)

    async def _running(self, connection: AsyncConnection) -> list[Challenge]:
        result = await connection.execute(
            sa.select(challenges).where(challenges.c.active.is_(True)).order_by(challenges.c.slug)
        )
        return [challenge_of(row) for row in result]

    async def _awards(
        self,
        connection: AsyncConnection,
        member_ids: Sequence[str],
        since: datetime | None,
        limit: int | None = None,
    ) -> list[Award]:
        query = sa.select(challenge_awards).where(
            challenge_counters.among(connection, challenge_awards.c.member_id, member_ids)
        )
        if since is not None:
            query = query.where(challenge_awards.c.period_end > since)
        query = query.order_by(challenge_awards.c.awarded_at.desc(), challenge_awards.c.id.desc())
        result = await connection.execute(query.limit(limit))
        return [Award.from_row(row) for row in result]

    async def progress(self, member_id: str) -> list[Progress]:
        """The member's standing in every challenge running now, in its current period."""
        await self.start()
        now = self.ledger.clock()

        async def work(connection: AsyncConnection) -> list[Progress]:
            ids = await self._members(connection, member_id)
            running = [c for c in await self._running(connection) if c.runs_at(now)]
            if not running:
                return []
            starts = {c.slug: c.period.start(now) for c in running}
            awards = {
                (award.challenge, award.period_start): award
                for award in await self._awards(connection, ids, now)
            }
            windows = {c.slug: c.window(starts[c.slug]) for c in running}
            counts = await challenge_counters.read(connection, member_id, starts.items())
            found = []
            for challenge in running:
                start = starts[challenge.slug]
                window = windows[challenge.slug]
                rows = counts.get((challenge.slug, start), [])
                progress = challenge_counters.progress(challenge, rows) if window else 0
                found.append(
                    Progress(
                        challenge,
                        progress,
                        challenge.target,
                        start,
                        challenge.period.end(start),
                        awards.get((challenge.slug, start)),
                    )
                )
            return found

        return await self.uow.read(work)

    async def badges(self, member_id: str, limit: int = MAX_BADGES) -> list[Award]:
        """The badges the member (and any member merged into them) earned, newest first."""

        async def work(connection: AsyncConnection) -> list[Award]:
            ids = await self._members(connection, member_id)
            return await self._awards(connection, ids, None, limit)

        return await self.uow.read(work)
