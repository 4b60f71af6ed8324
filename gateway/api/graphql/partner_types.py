"""Object types of partners: the partner, its currency, earn rate, conversion rules and
its pool's figures."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from enum import Enum

import strawberry
from strawberry import relay

from gateway.api.graphql.context import Info
from gateway.api.graphql.money import Money, money
from gateway.api.graphql.scalars import Int64
from gateway.configuration.documents import StoredRule
from gateway.ledger.rules import AccountCode as DomainAccountCode
from partners.config import coalition as config
from partners.config import conversions

Rounding = strawberry.enum(config.Rounding, description="How purchase points are rounded.")


@strawberry.type(description="A partner's points currency.")
class Currency:
    code: str
    name: str = strawberry.field(description='What members call the points, e.g. "miles".')


@strawberry.type(description="How many points a purchase earns at a partner.")
class EarnRate:
    points_per_unit: Decimal = strawberry.field(
        description="Points per unit of the purchase currency, before rounding."
    )
    purchase_currency: str
    rounding: Rounding  # type: ignore[valid-type]


@strawberry.enum(description="Where a conversion rule stands now.")
class RuleStatus(Enum):
    SCHEDULED = "scheduled"
    IN_FORCE = "in_force"
    ENDED = "ended"
    WITHDRAWN = "withdrawn"  # withdrawn (or replaced) before it took effect


@strawberry.type(
    description=(
        "A directed conversion rule: points of `fromPartner` become points of `toPartner`. "
        "The fee is taken in source points (percentage rounded up, plus a fixed part); the "
        "rest is multiplied by `rate` and rounded down to whole points."
    )
)
class ConversionRule:
    rule: strawberry.Private[conversions.ConversionRule]
    stored: strawberry.Private[StoredRule | None] = None  # with the history: who set it
    set_by_change: strawberry.Private[tuple[datetime, str] | None] = None

    @strawberry.field(description="Where the rule stands now.")
    def status(self, info: Info) -> RuleStatus:
        if self.stored is not None and not self.stored.live:
            return RuleStatus.WITHDRAWN
        now = info.context.service.clock()
        if now < self.rule.effective_from:
            return RuleStatus.SCHEDULED
        if self.rule.effective_until is not None and self.rule.effective_until <= now:
            return RuleStatus.ENDED
        return RuleStatus.IN_FORCE

    @strawberry.field(description="When the rule was set (with `history: true`).")
    def set_at(self) -> datetime | None:
        return self.set_by_change[0] if self.set_by_change else None

    @strawberry.field(
        description="Who set the rule (with `history: true`; operators only, null otherwise)."
    )
    def set_by(self, info: Info) -> str | None:
        if self.set_by_change is None or not info.context.access.is_operator:
            return None
        return self.set_by_change[1]

    @strawberry.field
    def from_partner(self, info: Info) -> Partner:
        return Partner.of(info, self.rule.source)

    @strawberry.field
    def to_partner(self, info: Info) -> Partner:
        return Partner.of(info, self.rule.target)

    @strawberry.field(description="Target points per source point.")
    def rate(self) -> Decimal:
        return self.rule.rate

    @strawberry.field
    def fee_percent(self) -> Decimal:
        return self.rule.fee_percent

    @strawberry.field(description="A fixed fee in source points, added to the percentage.")
    def fee_fixed(self) -> Int64:
        return self.rule.fee_fixed

    @strawberry.field
    def min_points(self) -> Int64:
        return self.rule.min_points

    @strawberry.field
    def max_points(self) -> Int64:
        return self.rule.max_points

    @strawberry.field
    def effective_from(self) -> datetime:
        return self.rule.effective_from

    @strawberry.field
    def effective_until(self) -> datetime | None:
        return self.rule.effective_until


@strawberry.type(description="A partner brand with its own pool of points.")
class Partner(relay.Node):
    key: relay.NodeID[str]
    config: strawberry.Private[config.Partner]

    @classmethod
    def of(cls, info: Info, slug: str) -> Partner:
        return cls(key=slug, config=info.context.service.coalition.partners[slug])

    @strawberry.field(
        description="The partner's short name, used wherever an input asks for a partner."
    )
    def slug(self) -> str:
        return self.key

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Partner | None]:
        partners = info.context.service.coalition.partners
        return [cls.of(info, slug) if slug in partners else None for slug in node_ids]

    @strawberry.field
    def name(self) -> str:
        return self.config.name

    @strawberry.field
    def currency(self) -> Currency:
        return Currency(code=self.config.currency_code, name=self.config.currency_name)

    @strawberry.field(description="What one point is worth in the settlement currency.")
    def point_value(self, info: Info) -> Money:
        return money(info, self.config.point_value)

    @strawberry.field
    def earn_rate(self) -> EarnRate:
        earn = self.config.earn
        return EarnRate(
            points_per_unit=earn.points_per_unit,
            purchase_currency=earn.purchase_currency,
            rounding=earn.rounding,
        )

    @strawberry.field(
        description="Conversions out of this partner's points in force now; with `history: "
        "true`, every rule set, oldest first: ended, in force, scheduled and withdrawn."
    )
    async def conversion_rules(self, info: Info, history: bool = False) -> list[ConversionRule]:
        service = info.context.service
        if not history:
            rules = service.coalition.rules_in_force(self.key, service.clock())
            return [ConversionRule(rule=rule) for rule in rules]
        state = await info.context.configuration.history()
        found = [stored for stored in state.rules if stored.rule.source == self.key]
        found.sort(key=lambda s: (s.rule.target, s.rule.effective_from, s.id or 0))
        return [
            ConversionRule(
                rule=stored.rule,
                stored=stored,
                set_by_change=state.changes.get(stored.change_id or 0),
            )
            for stored in found
        ]

    @strawberry.field(
        description="The pool's figures now. Operators see every partner's; a partner's app "
        "its own; null otherwise."
    )
    async def figures(self, info: Info) -> PartnerFigures | None:
        access = info.context.access
        if not (access.is_operator or access.partner == self.key):
            return None
        totals = await info.context.service.figures(self.key)
        return PartnerFigures(
            points_issued=-totals.get(DomainAccountCode.ISSUANCE.value, 0),
            points_redeemed=totals.get(DomainAccountCode.REDEMPTION.value, 0),
            points_outstanding=totals["outstanding"],
            liability=money(info, self.config.point_value * totals["outstanding"]),
            conversion_fees=totals.get(DomainAccountCode.FEES.value, 0),
            liquidity=totals.get(DomainAccountCode.LIQUIDITY.value, 0),
            members_holding_points=totals["holders"],
        )


@strawberry.type(description="A pool's totals, derived from the ledger.")
class PartnerFigures:
    points_issued: Int64 = strawberry.field(description="Net points issued by earning.")
    points_redeemed: Int64 = strawberry.field(description="Net points spent at the partner.")
    points_outstanding: Int64 = strawberry.field(description="Points in members' wallets.")
    liability: Money = strawberry.field(description="Outstanding points at the point value.")
    conversion_fees: Int64 = strawberry.field(description="Fees taken on conversions out.")
    liquidity: Int64 = strawberry.field(
        description="The operator's conversion liquidity in this pool: positive when more "
        "points left the pool by conversion than came in."
    )
    members_holding_points: Int64
