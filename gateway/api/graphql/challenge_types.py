"""Challenges, badges and a member's progress as GraphQL types (the queries and mutations
are in ``challenges``; ``Member.badges`` and ``Member.challenges`` resolve here).

Who sees a member's badges and progress: the member and operators see all of them; a
partner's app sees those of challenges that count earns in its own pool only, since a
coalition-wide challenge tells where else the member earns.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from datetime import datetime

import strawberry
from strawberry import relay

from gateway.api.graphql.context import Info
from gateway.api.graphql.errors import ArgumentError
from gateway.api.graphql.partner_types import Partner
from gateway.api.graphql.scalars import Int64
from gateway.api.graphql.types import Transfer
from gateway.auth.policy import Access
from gateway.challenges.service import ChallengeService
from gateway.challenges.standings import MAX_BADGES, Award, Progress
from gateway.ledger.service import LedgerService
from partners.config import challenges as domain

ChallengeKind = strawberry.enum(
    domain.ChallengeKind,
    description="What a challenge counts in a period: different partners earned at "
    "(PARTNERS_IN_PERIOD), earns at one partner (VISITS_AT_PARTNER), or points earned at "
    "one partner (POINTS_IN_PERIOD).",
)
ChallengePeriod = strawberry.enum(
    domain.Period, description="A calendar period in UTC; weeks start on Monday."
)

_SERVICES: weakref.WeakKeyDictionary[LedgerService, ChallengeService] = weakref.WeakKeyDictionary()


def challenge_service(info: Info) -> ChallengeService:
    """The request's challenge service: the context's when it carries one, else one per
    ledger service (it keeps no state but whether the configured challenges are synced)."""
    own = getattr(info.context, "challenges", None)
    if isinstance(own, ChallengeService):
        return own
    ledger = info.context.service
    found = _SERVICES.get(ledger)
    if found is None:
        found = _SERVICES[ledger] = ChallengeService(ledger)
    return found


def visible(access: Access, challenge: domain.Challenge) -> bool:
    """Whether the caller may see a member's standing in ``challenge`` (given it sees the
    member): a partner's app only in challenges counting earns in its own pool."""
    if access.partner is None:
        return True
    return challenge.kind.at_one_partner and challenge.partner == access.partner


@strawberry.type(
    description="A challenge: earn within a calendar period to get its badge and, "
    "optionally, bonus points; once per member and period."
)
class Challenge(relay.Node):
    challenge_slug: relay.NodeID[str]
    record: strawberry.Private[domain.Challenge]

    @classmethod
    def of(cls, record: domain.Challenge) -> Challenge:
        return cls(challenge_slug=record.slug, record=record)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Challenge | None]:
        slugs = [str(node_id) for node_id in node_ids]
        found = await challenge_service(info).get(slugs)
        return [cls.of(found[slug]) if slug in found else None for slug in slugs]

    @strawberry.field(description="Unique in the coalition.")
    def slug(self) -> str:
        return self.record.slug

    @strawberry.field
    def name(self) -> str:
        return self.record.name

    @strawberry.field
    def description(self) -> str | None:
        return self.record.description

    @strawberry.field
    def kind(self) -> ChallengeKind:  # type: ignore[valid-type]
        return self.record.kind

    @strawberry.field
    def period(self) -> ChallengePeriod:  # type: ignore[valid-type]
        return self.record.period

    @strawberry.field(description="Partners, earns or points to reach in one period.")
    def target(self) -> Int64:
        return self.record.target

    @strawberry.field(description="The badge's name.")
    def badge(self) -> str:
        return self.record.badge

    @strawberry.field(description="The partner that offers it; null for the coalition's own.")
    def owner(self, info: Info) -> Partner | None:
        return Partner.of(info, self.record.owner) if self.record.owner else None

    @strawberry.field(description="Where earns count; null: at every partner.")
    def partner(self, info: Info) -> Partner | None:
        return Partner.of(info, self.record.partner) if self.record.partner else None

    @strawberry.field(description="Points given with the badge (0: none).")
    def bonus_points(self) -> Int64:
        return self.record.bonus_points

    @strawberry.field(description="Whose points the bonus is.")
    def bonus_partner(self, info: Info) -> Partner | None:
        slug = self.record.bonus_partner
        return Partner.of(info, slug) if slug else None

    @strawberry.field(description="Earns before this do not count.")
    def valid_from(self) -> datetime | None:
        return self.record.valid_from

    @strawberry.field(description="Earns from this moment on do not count.")
    def valid_until(self) -> datetime | None:
        return self.record.valid_until

    @strawberry.field
    def active(self) -> bool:
        return self.record.active

    @strawberry.field(
        description="Configured in coalition.toml (changed there, not with updateChallenge)."
    )
    def configured(self) -> bool:
        return self.record.configured


@strawberry.type(description="A member's standing in a challenge in its current period.")
class ChallengeProgress:
    record: strawberry.Private[Progress]

    @strawberry.field
    def challenge(self) -> Challenge:
        return Challenge.of(self.record.challenge)

    @strawberry.field(description="Partners, earns or points so far in this period.")
    def count(self) -> Int64:
        return self.record.count

    @strawberry.field
    def target(self) -> Int64:
        return self.record.target

    @strawberry.field
    def period_start(self) -> datetime:
        return self.record.period_start

    @strawberry.field(description="When this period ends and counting starts again.")
    def period_end(self) -> datetime:
        return self.record.period_end

    @strawberry.field(description="Whether the target is reached in this period.")
    def completed(self) -> bool:
        return self.record.completed

    @strawberry.field(description="When this period's badge was awarded; null before.")
    def awarded_at(self) -> datetime | None:
        return self.record.award.awarded_at if self.record.award else None


@strawberry.type(description="A badge a member earned by meeting a challenge in a period.")
class Badge:
    record: strawberry.Private[Award]
    challenge_record: strawberry.Private[domain.Challenge]

    @strawberry.field(description="The badge's name.")
    def name(self) -> str:
        return self.record.badge

    @strawberry.field
    def challenge(self) -> Challenge:
        return Challenge.of(self.challenge_record)

    @strawberry.field
    def period_start(self) -> datetime:
        return self.record.period_start

    @strawberry.field
    def period_end(self) -> datetime:
        return self.record.period_end

    @strawberry.field
    def awarded_at(self) -> datetime:
        return self.record.awarded_at

    @strawberry.field(description="Points given with it (0: none).")
    def bonus_points(self) -> Int64:
        return self.record.bonus_points

    @strawberry.field
    def bonus_partner(self, info: Info) -> Partner | None:
        slug = self.record.bonus_partner
        return Partner.of(info, slug) if slug else None

    @strawberry.field(description="The earn transfer that paid the bonus.")
    async def bonus_transfer(self, info: Info) -> Transfer | None:
        if self.record.bonus_transfer_id is None:
            return None
        record = await info.context.loaders.transfers.load(self.record.bonus_transfer_id)
        if record is None or not await info.context.sees_transfer(record):
            return None
        return Transfer.of(record)


async def member_badges(info: Info, member_id: str, first: int) -> list[Badge]:
    """``Member.badges``: the member is already one the caller may see."""
    if not 0 <= first <= MAX_BADGES:
        raise ArgumentError(f"`first` must be between 0 and {MAX_BADGES}.")
    service = challenge_service(info)
    awards = await service.badges(member_id, MAX_BADGES)
    found = await service.get(sorted({award.challenge for award in awards}))
    access = info.context.access
    shown = [
        Badge(record=award, challenge_record=found[award.challenge])
        for award in awards
        if award.challenge in found and visible(access, found[award.challenge])
    ]
    return shown[:first]


async def member_challenges(info: Info, member_id: str) -> list[ChallengeProgress]:
    """``Member.challenges``: progress in every challenge running now."""
    found = await challenge_service(info).progress(member_id)
    access = info.context.access
    return [ChallengeProgress(record=p) for p in found if visible(access, p.challenge)]
