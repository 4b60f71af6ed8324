"""Challenges as the API reads, creates and changes them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.challenges import counters as challenge_counters
from gateway.challenges.sync import Configured, challenge_of, columns_of, counts_differently
from gateway.challenges.tables import challenges
from gateway.kernel.errors import DomainError, ErrorCode, shown
from gateway.kernel.schema import insert_for
from gateway.kernel.validation import invalid
from partners.config.challenges import (
    Challenge,
    ChallengeKind,
    ChallengeProblem,
    Period,
    check_challenge,
)

IMMUTABLE = ("slug", "kind", "period", "partner")  # a new challenge instead of a change


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


class Definitions(Configured):
    """The reading and managing part of the challenge service."""

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
            return [challenge_of(row) for row in await connection.execute(query)]

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
            return {row.slug: challenge_of(row) for row in result}

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
                insert_for(connection, challenges)
                .values(**columns_of(challenge), created_at=now, updated_at=now)
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
            current = challenge_of(row)
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
            values = {k: v for k, v in columns_of(updated).items() if k != "slug"}
            now = self.ledger.clock()
            await connection.execute(
                sa.update(challenges)
                .where(challenges.c.slug == slug)
                .values(**values, updated_at=now)
            )
            if counts_differently(row, updated):
                await challenge_counters.rebuild(connection, updated, now)
            return updated

        return await self.uow.write(work)


def _plain(value: Any) -> Any:
    """A setting as the API gives it: an enum's value."""
    return value.value if isinstance(value, ChallengeKind | Period) else value
