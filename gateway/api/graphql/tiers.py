"""Coalition-wide tiers over GraphQL: the `tiers` query and `Member.tier`."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from gateway.api.graphql.context import Info
from gateway.api.graphql.money import Money, money
from gateway.api.graphql.partner_types import Partner
from gateway.tiers.service import TierService, TierStatus
from partners.config import tiers as config


@strawberry.type(description="A tier's benefit at one partner.")
class TierBenefit:
    partner_slug: strawberry.Private[str]
    earn_multiplier: Decimal = strawberry.field(
        description="Points earned at the partner are multiplied by this (1.25: a quarter more)."
    )

    @strawberry.field
    def partner(self, info: Info) -> Partner:
        return Partner.of(info, self.partner_slug)


@strawberry.type(
    description="A coalition-wide tier, reached by the qualifying value earned at all "
    "partners together within the rolling window."
)
class Tier:
    config: strawberry.Private[config.Tier]

    @strawberry.field(description="How rewards and the configuration name the tier.")
    def slug(self) -> str:
        return self.config.slug

    @strawberry.field
    def name(self) -> str:
        return self.config.name

    @strawberry.field
    def description(self) -> str | None:
        return self.config.description

    @strawberry.field(description="0 for the first tier, which every member is in.")
    def rank(self) -> int:
        return self.config.rank

    @strawberry.field(
        description="The value (points earned within the window, each at its partner's "
        "point value) that reaches the tier."
    )
    def qualifying_value(self, info: Info) -> Money:
        return money(info, self.config.qualifying_value)

    @strawberry.field(description="Benefits at partners, by partner slug.")
    def benefits(self) -> list[TierBenefit]:
        return [
            TierBenefit(partner_slug=slug, earn_multiplier=factor)
            for slug, factor in sorted(self.config.multipliers.items())
        ]


@strawberry.type(
    description="Where a member stands in the tiers now. Values are in the settlement "
    "currency; upgrades come as soon as the value reaches a tier, downgrades only at a "
    "review and after the grace period."
)
class MemberTier:
    status: strawberry.Private[TierStatus]

    @strawberry.field
    def tier(self) -> Tier:
        return Tier(config=self.status.tier)

    @strawberry.field(description="Since when; null when the member never left the first tier.")
    def since(self) -> datetime | None:
        return self.status.since

    @strawberry.field(
        description="When the tier is next checked against the qualifying value; null in the "
        "first tier. Reaching the tier's value again by then keeps it for another window."
    )
    def review_at(self) -> datetime | None:
        return self.status.review_at

    @strawberry.field(
        description="Set after a review the value did not pass: the end of the grace period, "
        "when the member drops to the tier their value reaches unless it reaches this one "
        "again first."
    )
    def downgrade_at(self) -> datetime | None:
        return self.status.downgrade_at

    @strawberry.field(description="What the member earned within the window, at point value.")
    def qualifying_value(self, info: Info) -> Money:
        return money(info, self.status.qualifying_value)

    @strawberry.field(description="The window counts earns after this moment, up to now.")
    def window_start(self) -> datetime:
        return self.status.window_start

    @strawberry.field(description="The tier above; null at the top.")
    def next_tier(self) -> Tier | None:
        following = self.status.next_tier
        return Tier(config=following) if following else None

    @strawberry.field(description="More qualifying value that reaches `nextTier`.")
    def value_needed(self, info: Info) -> Money | None:
        needed = self.status.value_needed
        return money(info, needed) if needed is not None else None

    @strawberry.field(
        description="More qualifying value the tier needs by `reviewAt` to be kept (zero "
        "when it is reached now)."
    )
    def value_to_keep(self, info: Info) -> Money:
        return money(info, self.status.value_to_keep)


async def member_tier(info: Info, member_id: str) -> MemberTier | None:
    """``Member.tier``: the caller already sees the member (a partner's app with
    members:read sees its own customers); null when the coalition has no tiers."""
    status = await TierService(info.context.service).status(member_id)
    return MemberTier(status=status) if status else None


@strawberry.type
class TierQueries:
    @strawberry.field(description="The coalition's tiers, lowest first; empty without tiers.")
    def tiers(self, info: Info) -> list[Tier]:
        configured = info.context.service.coalition.tiers
        return [Tier(config=tier) for tier in configured.levels] if configured else []


def tier_named(info: Info, slug: str | None) -> Tier | None:
    """The configured tier ``slug`` names; None for None or a tier no longer configured."""
    configured = info.context.service.coalition.tiers
    found = configured.tier(slug) if configured and slug else None
    return Tier(config=found) if found else None
