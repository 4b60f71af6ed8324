"""Challenges and badges: progress derived from the ledger, awards once per member and period.

Progress is never stored: it is counted from the member's earn transfers (their own and
those of members merged into them) within the challenge's current calendar period (UTC).
An earn reversed in full does not count; a partial reversal counts what is left. Bonus
points are earn transfers themselves, kept out of every count.

An award is one row of ``challenge_awards``, unique per (challenge, member, period), written
in the same transaction as its bonus: an EARN transfer at the bonus partner whose
idempotency key is derived from (challenge, member, period). However many evaluations run
at once (after every earn, from the job, in several processes), a badge and its bonus are
given once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.challenges import counters as challenge_counters
from gateway.challenges.counters import BONUS_SCOPE
from gateway.challenges.tables import challenge_awards, challenges
from gateway.kernel.errors import DomainError, ErrorCode, shown
from gateway.kernel.validation import invalid
from gateway.ledger import locks
from gateway.ledger import store as repository
from gateway.ledger.locks import Lock
from gateway.ledger.rules import TransferKind, earn_legs
from gateway.ledger.service import LedgerService
from partners.config.challenges import (
    Challenge,
    ChallengeKind,
    ChallengeProblem,
    Period,
    check_challenge,
)
from partners.config.coalition import ConfigError

log = logging.getLogger(__name__)

MAX_BADGES = 100
IMMUTABLE = ("slug", "kind", "period", "partner")  # a new challenge instead of a change


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


@dataclass(frozen=True)
class ChallengeDraft:
    """A challenge's settings as given through the API; None leaves a setting as it is."""

    slug: str | None = None
    name: str | None = None
    description: str | None = None
    kind: str | None = None
    period: str | None = None
    target: int | None = None
    badge: str | None = None
    partner: str | None = None
    bonus_points: int | None = None
    bonus_partner: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    active: bool | None = None
    clear: frozenset[str] = field(default_factory=frozenset)  # settings to set to null


def _challenge(row: Any) -> Challenge:
    return Challenge(
        slug=row.slug,
        name=row.name,
        kind=ChallengeKind(row.kind),
        period=Period(row.period),
        target=row.target,
        badge=row.badge,
        partner=row.partner,
        bonus_points=row.bonus_points,
        bonus_partner=row.bonus_partner,
        description=row.description,
        owner=row.owner,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        active=row.active,
        configured=row.source == "config",
    )


def _columns(challenge: Challenge) -> dict[str, Any]:
    return {
        "slug": challenge.slug,
        "source": "config" if challenge.configured else "api",
        "owner": challenge.owner,
        "kind": challenge.kind.value,
        "period": challenge.period.value,
        "target": challenge.target,
        "name": challenge.name,
        "badge": challenge.badge,
        "description": challenge.description,
        "partner": challenge.partner,
        "bonus_points": challenge.bonus_points,
        "bonus_partner": challenge.bonus_partner,
        "valid_from": challenge.valid_from,
        "valid_until": challenge.valid_until,
        "active": challenge.active,
    }


_COLUMNS = (
    "slug",
    "source",
    "owner",
    "kind",
    "period",
    "target",
    "name",
    "badge",
    "description",
    "partner",
    "bonus_points",
    "bonus_partner",
    "valid_from",
    "valid_until",
    "active",
)  # what _columns gives


def _insert(connection: AsyncConnection, table: sa.Table) -> Any:
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def bonus_key(challenge: str, member_id: str, period_start: datetime) -> str:
    return f"{challenge}:{member_id}:{period_start.date().isoformat()}"


class ChallengeService:
    def __init__(self, ledger: LedgerService) -> None:
        self.ledger = ledger
        self.uow = ledger.uow
        self._synced = False
        self._sync_lock = asyncio.Lock()

    # The configured challenges

    async def start(self) -> None:
        """Write coalition.toml's challenges into ``challenges`` (idempotent, safe in several
        processes at once); a configured challenge that left the file is deactivated, its
        badges kept. Raises ``ConfigError`` when a configured slug belongs to a challenge
        created through the API."""
        if self._synced:
            return
        async with self._sync_lock:
            if not self._synced:
                # Usually another process synced already: a read says so without taking
                # the rows' locks (many processes start at once).
                if not await self.uow.read(self._in_sync):
                    await self.uow.write(self._sync)
                self._synced = True

    async def prepare(self, connection: AsyncConnection) -> None:
        """``start`` inside a caller's write (the badge consumer's batch)."""
        if self._synced:
            return
        if await self._in_sync(connection):
            self._synced = True
        else:
            await self._sync(connection)

    async def _in_sync(self, connection: AsyncConnection) -> bool:
        configured = {c.slug: _columns(c) for c in self.ledger.coalition.challenges}
        result = await connection.execute(
            sa.select(challenges).where(
                sa.or_(
                    challenges.c.slug.in_(list(configured)),
                    sa.and_(challenges.c.source == "config", challenges.c.active.is_(True)),
                )
            )
        )
        stored = {row.slug: {name: getattr(row, name) for name in _COLUMNS} for row in result}
        if stored != configured:
            return False
        unbuilt = await connection.scalar(
            sa.select(sa.func.count())
            .select_from(challenges)
            .where(challenges.c.active.is_(True), challenges.c.counted_at.is_(None))
        )
        return not unbuilt

    async def _sync(self, connection: AsyncConnection) -> None:
        now = self.ledger.clock()
        configured = self.ledger.coalition.challenges
        await challenge_counters.lock(connection)
        before = {
            row.slug: row
            for row in await connection.execute(
                sa.select(challenges).where(challenges.c.slug.in_([c.slug for c in configured]))
            )
        }
        for index, challenge in enumerate(configured):
            values = _columns(challenge)
            insert = _insert(connection, challenges).values(
                **values, created_at=now, updated_at=now
            )
            changed = {name: insert.excluded[name] for name in values if name != "slug"}
            statement = insert.on_conflict_do_update(
                index_elements=["slug"],
                set_={**changed, "updated_at": insert.excluded.updated_at},
                where=challenges.c.source == "config",
            ).returning(challenges.c.slug)
            if (await connection.execute(statement)).first() is None:
                raise ConfigError(
                    self._config_file(),
                    None,
                    f"challenges[{index}].slug",
                    f"'{challenge.slug}' is already the slug of a challenge created through "
                    "the API; give this one another slug",
                )
            if _counts_differently(before.get(challenge.slug), challenge):
                await challenge_counters.rebuild(connection, challenge, now)
        await connection.execute(
            sa.update(challenges)
            .where(
                challenges.c.source == "config",
                challenges.c.active.is_(True),
                challenges.c.slug.not_in([c.slug for c in configured]),
            )
            .values(active=False, updated_at=now)
        )
        # Challenges whose counters were never built (created before counters existed).
        unbuilt = await connection.execute(
            sa.select(challenges).where(
                challenges.c.active.is_(True), challenges.c.counted_at.is_(None)
            )
        )
        for row in unbuilt.all():
            await challenge_counters.rebuild(connection, _challenge(row), now)

    def _config_file(self) -> str:
        partners = self.ledger.coalition.partners.values()
        folder = next((Path(p.source_file).parent for p in partners), Path("."))
        return str(folder / "coalition.toml")

    # Reading challenges

    async def challenges(
        self, partner: str | None = None, include_inactive: bool = False
    ) -> list[Challenge]:
        """Challenges by slug; ``partner``: those it offers, counts earns at or pays."""
        await self.start()

        async def work(connection: AsyncConnection) -> list[Challenge]:
            query = sa.select(challenges).order_by(challenges.c.slug)
            if partner is not None:
                query = query.where(
                    sa.or_(
                        challenges.c.owner == partner,
                        challenges.c.partner == partner,
                        challenges.c.bonus_partner == partner,
                    )
                )
            if not include_inactive:
                query = query.where(challenges.c.active.is_(True))
            return [_challenge(row) for row in await connection.execute(query)]

        found = await self.uow.read(work)
        if include_inactive:
            return found
        now = self.ledger.clock()
        return [c for c in found if c.valid_until is None or c.valid_until > now]

    async def get(self, slugs: Sequence[str]) -> dict[str, Challenge]:
        await self.start()

        async def work(connection: AsyncConnection) -> dict[str, Challenge]:
            result = await connection.execute(
                sa.select(challenges).where(challenges.c.slug.in_(list(slugs)))
            )
            return {row.slug: _challenge(row) for row in result}

        return await self.uow.read(work)

    # Managing challenges

    def _checked(self, challenge: Challenge) -> Challenge:
        for name in ("valid_from", "valid_until"):
            moment = getattr(challenge, name)
            if moment is not None and moment.tzinfo is None:
                raise invalid(name, "A date-time needs a UTC offset, e.g. 2026-07-01T00:00:00Z.")
        try:
            check_challenge(challenge, self.ledger.coalition.partners)
        except ChallengeProblem as problem:
            code = {
                "unknown_partner": ErrorCode.UNKNOWN_PARTNER,
                "remote": ErrorCode.NOT_AVAILABLE_AT_REMOTE_POOL,
            }.get(problem.kind, ErrorCode.INVALID_INPUT)
            label = problem.field.replace("_", " ")
            raise DomainError(code, f"The {label} {problem.problem}.", (problem.field,)) from None
        return challenge

    @staticmethod
    def _enum(value: str, enum: type[ChallengeKind] | type[Period], field: str) -> Any:
        try:
            return enum(value)
        except ValueError:
            raise invalid(field, f"No {field} {shown(value)}.") from None

    async def create(self, owner: str | None, draft: ChallengeDraft) -> Challenge:
        """A new challenge, offered by ``owner`` (a partner) or by the coalition (None)."""
        if owner is not None:
            self.ledger.partner(owner)
        for name in ("slug", "name", "kind", "period", "target", "badge"):
            if getattr(draft, name) is None:
                raise invalid(name, f"A new challenge needs {name}.")
        assert draft.slug and draft.name and draft.kind and draft.period and draft.badge
        assert draft.target is not None
        kind: ChallengeKind = self._enum(draft.kind, ChallengeKind, "kind")
        partner = draft.partner
        if partner is None and owner is not None and kind.at_one_partner:
            partner = owner  # a partner's challenge counts its own earns
        bonus_points = draft.bonus_points or 0
        bonus_partner = draft.bonus_partner
        if bonus_partner is None and bonus_points > 0:
            bonus_partner = owner or (partner if kind.at_one_partner else None)
        challenge = self._checked(
            Challenge(
                slug=draft.slug,
                name=draft.name,
                kind=kind,
                period=self._enum(draft.period, Period, "period"),
                target=draft.target,
                badge=draft.badge,
                partner=partner,
                bonus_points=bonus_points,
                bonus_partner=bonus_partner,
                description=draft.description,
                owner=owner,
                valid_from=draft.valid_from,
                valid_until=draft.valid_until,
                active=True if draft.active is None else draft.active,
            )
        )
        await self.start()
        now = self.ledger.clock()

        async def work(connection: AsyncConnection) -> Challenge:
            await challenge_counters.lock(connection)
            statement = (
                _insert(connection, challenges)
                .values(**_columns(challenge), created_at=now, updated_at=now)
                .on_conflict_do_nothing(index_elements=["slug"])
                .returning(challenges.c.slug)
            )
            if (await connection.execute(statement)).first() is None:
                raise invalid("slug", f"The slug '{challenge.slug}' is taken; choose another.")
            await challenge_counters.rebuild(connection, challenge, now)
            return challenge

        return await self.uow.write(work)

    async def update(self, slug: str, draft: ChallengeDraft) -> Challenge:
        """Change a challenge created through the API (a configured one changes in
        coalition.toml). Badges already awarded keep what they gave."""
        await self.start()

        async def work(connection: AsyncConnection) -> Challenge:
            await challenge_counters.lock(connection)
            row = (
                await connection.execute(
                    sa.select(challenges).where(challenges.c.slug == slug).with_for_update()
                )
            ).first()
            if row is None:
                raise DomainError(
                    ErrorCode.UNKNOWN_CHALLENGE, "No such challenge.", ("challenge_id",)
                )
            current = _challenge(row)
            if current.configured:
                raise invalid(
                    "challenge_id",
                    f"'{slug}' is configured in coalition.toml; an operator changes it there.",
                )
            for name in IMMUTABLE:
                given = getattr(draft, name)
                if given is not None and given != _plain(getattr(current, name)):
                    raise invalid(
                        name,
                        f"A challenge's {name} cannot change once members work on it; "
                        "deactivate it and create another.",
                    )
            changes: dict[str, Any] = {
                name: getattr(draft, name)
                for name in (
                    "name",
                    "description",
                    "target",
                    "badge",
                    "bonus_points",
                    "bonus_partner",
                    "valid_from",
                    "valid_until",
                    "active",
                )
                if getattr(draft, name) is not None
            }
            for name in draft.clear & {"description", "valid_from", "valid_until"}:
                changes[name] = None
            if changes.get("bonus_points") == 0:
                changes["bonus_partner"] = None
            elif changes.get("bonus_points") and current.bonus_partner is None:
                changes.setdefault("bonus_partner", current.owner or current.partner)
            updated = self._checked(replace(current, **changes))
            values = {k: v for k, v in _columns(updated).items() if k != "slug"}
            now = self.ledger.clock()
            await connection.execute(
                sa.update(challenges)
                .where(challenges.c.slug == slug)
                .values(**values, updated_at=now)
            )
            if _counts_differently(row, updated):
                await challenge_counters.rebuild(connection, updated, now)
            return updated

        return await self.uow.write(work)

    # Members: progress, badges, awards

    async def _members(self, connection: AsyncConnection, member_id: str) -> list[str]:
        """The member and every member merged into them."""
        return [member_id, *await repository.merged_into(connection, member_id)]

    async def _running(self, connection: AsyncConnection) -> list[Challenge]:
        result = await connection.execute(
            sa.select(challenges).where(challenges.c.active.is_(True)).order_by(challenges.c.slug)
        )
        return [_challenge(row) for row in result]

    async def _awards(
        self,
        connection: AsyncConnection,
        member_ids: Sequence[str],
        since: datetime | None,
        limit: int | None = None,
    ) -> list[Award]:
        query = sa.select(challenge_awards).where(challenge_awards.c.member_id.in_(member_ids))
        if since is not None:
            query = query.where(challenge_awards.c.period_end > since)
        query = query.order_by(challenge_awards.c.awarded_at.desc(), challenge_awards.c.id.desc())
        result = await connection.execute(query.limit(limit))
        return [Award.from_row(row) for row in result]

    async def _due(
        self,
        connection: AsyncConnection,
        member_id: str,
        member_ids: Sequence[str],
        since: datetime,
        until: datetime,
    ) -> list[tuple[Challenge, datetime, int]]:
        """What the member (``member_ids``: with those merged into them) met and was not
        awarded yet, in every period that holds a moment of ``[since, until]``: (challenge,
        period start, count) from the counters, in a fixed order (so concurrent evaluations
        take the award rows' locks alike)."""
        candidates: list[tuple[Challenge, datetime]] = []
        awarded = {
            (award.challenge, award.period_start)
            for award in await self._awards(connection, member_ids, since)
        }
        for challenge in await self._running(connection):
            for start in challenge.period.starts(since, until):
                window = challenge.window(start)
                if window is not None and (challenge.slug, start) not in awarded:
                    candidates.append((challenge, start))
        if not candidates:
            return []
        counts = await challenge_counters.read(
            connection, member_id, [(c.slug, start) for c, start in candidates]
        )
        due = []
        for challenge, start in candidates:
            progress = challenge_counters.progress(
                challenge, counts.get((challenge.slug, start), [])
            )
            if progress >= challenge.target:
                due.append((challenge, start, progress))
        return due

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
            survivor = members[member_id].id
            ids = await self._members(connection, survivor)
            return bool(await self._due(connection, survivor, ids, since, until))

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
        ids = await self._members(connection, survivor)
        given = []
        for challenge, start, progress in await self._due(connection, survivor, ids, since, until):
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
            _insert(connection, challenge_awards)
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


def _counts_differently(row: Any, challenge: Challenge) -> bool:
    """Whether the counters of ``challenge`` must be built again: new, (re)activated, with
    another validity, or never built."""
    if row is None:
        return True
    return (
        (challenge.active and not row.active)
        or row.valid_from != challenge.valid_from
        or row.valid_until != challenge.valid_until
        or (challenge.active and row.counted_at is None)
    )


def _plain(value: Any) -> Any:
    """A setting as the API gives it: an enum's value."""
    return value.value if isinstance(value, ChallengeKind | Period) else value
