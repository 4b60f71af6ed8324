"""Challenges over GraphQL: the list, and creating and changing them.

Operators manage coalition-wide challenges (and any partner's); a partner's app with
``rewards:manage`` manages its own partner's, which count earns and pay bonuses in its own
pool only. Challenges of coalition.toml are changed there.
"""

from __future__ import annotations

from datetime import datetime

import strawberry

from gateway.api.graphql.challenge_types import (
    Challenge,
    ChallengeKind,
    ChallengePeriod,
    challenge_service,
)
from gateway.api.graphql.context import Info
from gateway.api.graphql.payloads import UserError
from gateway.api.graphql.scalars import Int64, decode_id
from gateway.challenges.definitions import ChallengeDraft
from gateway.kernel.errors import DomainError, ErrorCode


@strawberry.input(description="A challenge's settings; on update, only those given change.")
class ChallengeInput:
    slug: str | None = strawberry.field(
        default=None, description="Unique in the coalition: 2-32 of a-z, 0-9 and '-'."
    )
    name: str | None = None
    description: str | None = None
    kind: ChallengeKind | None = None  # type: ignore[valid-type]
    period: ChallengePeriod | None = None  # type: ignore[valid-type]
    target: Int64 | None = strawberry.field(
        default=None, description="Partners, earns or points to reach in one period."
    )
    badge: str | None = strawberry.field(default=None, description="The badge's name.")
    partner: str | None = strawberry.field(
        default=None,
        description="Where earns count (VISITS_AT_PARTNER, POINTS_IN_PERIOD); a partner's own "
        "challenge counts at that partner.",
    )
    bonus_points: Int64 | None = strawberry.field(
        default=None, description="Points given with the badge; 0 for none."
    )
    bonus_partner: str | None = strawberry.field(
        default=None,
        description="Whose points the bonus is (a pool the gateway keeps); defaults to the "
        "offering partner, or to `partner`.",
    )
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    active: bool | None = None

    def draft(self) -> ChallengeDraft:
        return ChallengeDraft(
            slug=self.slug,
            name=self.name,
            description=self.description,
            kind=self.kind.value if self.kind is not None else None,
            period=self.period.value if self.period is not None else None,
            target=self.target,
            badge=self.badge,
            partner=self.partner,
            bonus_points=self.bonus_points,
            bonus_partner=self.bonus_partner,
            valid_from=self.valid_from,
            valid_until=self.valid_until,
            active=self.active,
        )


@strawberry.input
class CreateChallengeInput:
    partner: str | None = strawberry.field(
        default=None,
        description="The partner that offers it; leave out for a coalition-wide challenge "
        "(operators only).",
    )
    challenge: ChallengeInput


@strawberry.input
class UpdateChallengeInput:
    challenge_id: strawberry.ID
    challenge: ChallengeInput = strawberry.field(
        description="Only the settings given change; slug, kind, period and partner cannot."
    )


@strawberry.type
class ChallengePayload:
    challenge: Challenge | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


def _inside_challenge(error: DomainError) -> DomainError:
    """A setting's error points into `input.challenge`."""
    if not error.field or error.field[0] == "challenge_id":
        return error
    return DomainError(error.code, error.message, ("challenge", *error.field))


def _unknown() -> DomainError:
    return DomainError(ErrorCode.UNKNOWN_CHALLENGE, "No such challenge.", ("challenge_id",))


@strawberry.type
class ChallengeQueries:
    @strawberry.field(
        description="Challenges by slug: those running (active, not ended) unless asked; "
        "with `partner`, those it offers, counts earns at or pays bonuses in."
    )
    async def challenges(
        self, info: Info, partner: str | None = None, include_inactive: bool = False
    ) -> list[Challenge]:
        found = await challenge_service(info).challenges(partner, include_inactive)
        return [Challenge.of(record) for record in found]


@strawberry.type
class ChallengeMutations:
    @strawberry.mutation(
        description="Create a challenge: coalition-wide (operators), or a partner's own (its "
        "app needs rewards:manage)."
    )
    async def create_challenge(
        self, info: Info, input: CreateChallengeInput
    ) -> ChallengePayload | None:
        access = info.context.access
        try:
            if input.partner is None:
                access.require_operator()
            else:
                access.act_at(input.partner, "rewards:manage")
                info.context.service.partner(input.partner)
        except DomainError as error:
            return ChallengePayload(user_errors=UserError.of(error))
        try:
            record = await challenge_service(info).create(input.partner, input.challenge.draft())
        except DomainError as error:
            return ChallengePayload(user_errors=UserError.of(_inside_challenge(error)))
        return ChallengePayload(challenge=Challenge.of(record))

    @strawberry.mutation(description="Change a challenge's settings, or end it (active: false).")
    async def update_challenge(
        self, info: Info, input: UpdateChallengeInput
    ) -> ChallengePayload | None:
        access = info.context.access
        service = challenge_service(info)
        try:
            slug = decode_id(str(input.challenge_id), "Challenge")
            found = (await service.get([slug])).get(slug) if slug else None
            if found is None:
                raise _unknown()
            if found.owner is None:
                access.require_operator()
            else:
                access.act_at(found.owner, "rewards:manage", ("challenge_id",))
            record = await service.update(found.slug, input.challenge.draft())
        except DomainError as error:
            return ChallengePayload(user_errors=UserError.of(_inside_challenge(error)))
        return ChallengePayload(challenge=Challenge.of(record))
