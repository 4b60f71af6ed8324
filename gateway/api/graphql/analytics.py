"""Analytics over GraphQL: ``earnBurn`` (figures per day, week or month, liability over
time, breakage, redemption rate, active members) and ``crossBrandFlows``, from the daily
aggregates the ``analytics.daily`` consumer keeps. Operators see every partner; a partner's
app its own; anyone else is refused (ACCESS_DENIED)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import strawberry

from gateway.analytics import rules
from gateway.analytics.rules import MAX_BUCKETS, RangeError, days
from gateway.analytics.rules import Granularity as DomainGranularity
from gateway.analytics.service import AnalyticsService, Bucket, Figures, Flow, Report
from gateway.api.graphql.context import Info
from gateway.api.graphql.errors import ArgumentError
from gateway.api.graphql.money import Money, money
from gateway.api.graphql.partner_types import Partner
from gateway.api.graphql.scalars import Int64
from gateway.auth.policy import denied
from gateway.kernel.errors import DomainError, ErrorCode

Granularity = strawberry.enum(
    DomainGranularity,
    name="AnalyticsGranularity",
    description="Buckets of a report: UTC calendar days, ISO weeks (from Monday) or months.",
)


@strawberry.type(description="Points moved in a period (net of reversals).")
class AnalyticsFigures:
    figures: strawberry.Private[Figures]

    @strawberry.field(description="Points earned (less clawbacks after returns).")
    def issued(self) -> Int64:
        return self.figures.issued

    @strawberry.field(description="Points spent (redemptions and captured holds).")
    def redeemed(self) -> Int64:
        return self.figures.redeemed

    @strawberry.field(description="Points that expired unspent.")
    def expired(self) -> Int64:
        return self.figures.expired

    @strawberry.field(description="Points converted out of the pool (fees included).")
    def converted_out(self) -> Int64:
        return self.figures.converted_out

    @strawberry.field(description="Points converted into the pool (as received).")
    def converted_in(self) -> Int64:
        return self.figures.converted_in

    @strawberry.field(
        description="Distinct members who earned, redeemed, converted, gave a gift, placed "
        "or captured a hold, or bought a reward in the period."
    )
    def active_members(self) -> Int64:
        return self.figures.active_members


@strawberry.type(description="One day, week or month of a report.")
class AnalyticsBucket:
    bucket: strawberry.Private[Bucket]

    @strawberry.field(description="Its first day (the range's first day for the first bucket).")
    def start(self) -> date:
        return self.bucket.start

    @strawberry.field(description="Its last day, included (cut to the range's last day).")
    def end(self) -> date:
        return self.bucket.end

    @strawberry.field
    def figures(self) -> AnalyticsFigures:
        return AnalyticsFigures(figures=self.bucket.figures)

    @strawberry.field(description="Points outstanding at the end of its last day.")
    def outstanding(self) -> Int64:
        return self.bucket.outstanding

    @strawberry.field(description="Their value at each partner's point value now.")
    def liability(self, info: Info) -> Money:
        return money(info, self.bucket.liability)


@strawberry.type(description="Earn and burn of a partner (or of the coalition) over a range.")
class EarnBurnReport:
    report: strawberry.Private[Report]
    granularity: Granularity  # type: ignore[valid-type]

    @strawberry.field(description="The partner asked for; null: every partner together.")
    def partner(self, info: Info) -> Partner | None:
        partners = self.report.partners
        return Partner.of(info, partners[0]) if len(partners) == 1 else None

    @strawberry.field(description="The range's first UTC day.")
    def first_day(self) -> date:
        return self.report.first

    @strawberry.field(description="The range's last UTC day, included.")
    def last_day(self) -> date:
        return self.report.last

    @strawberry.field
    def buckets(self) -> list[AnalyticsBucket]:
        return [AnalyticsBucket(bucket=bucket) for bucket in self.report.buckets]

    @strawberry.field(description="The whole range (active members: distinct over it).")
    def totals(self) -> AnalyticsFigures:
        return AnalyticsFigures(figures=self.report.totals)

    @strawberry.field(description="Points outstanding at the end of the range.")
    def outstanding(self) -> Int64:
        return self.report.outstanding

    @strawberry.field(description="Their value at each partner's point value now.")
    def liability(self, info: Info) -> Money:
        return money(info, self.report.liability)

    @strawberry.field(description="Breakage: the points that expired in the range.")
    def breakage_points(self) -> Int64:
        return self.report.totals.expired

    @strawberry.field(description="Their value at each partner's point value now.")
    def breakage_value(self, info: Info) -> Money:
        return money(info, self.report.breakage)

    @strawberry.field(
        description="Points redeemed ÷ points that came into the pool in the range (4 "
        "decimals): issued, and for one partner converted in from other partners too; for "
        "every partner together, issued alone. Null when none came in."
    )
    def redemption_rate(self) -> Decimal | None:
        totals = self.report.totals
        one_pool = len(self.report.partners) == 1
        return rules.redemption_rate(totals.redeemed, totals.issued, totals.converted_in, one_pool)

    @strawberry.field(
        description="When the last event the figures include occurred: later postings are "
        "not in them yet (the job runner adds them within a second or so); null: none yet."
    )
    def as_of(self) -> datetime | None:
        return self.report.as_of


@strawberry.type(description="Points that went from one partner's pool to another's.")
class CrossBrandFlow:
    flow: strawberry.Private[Flow]

    @strawberry.field
    def from_partner(self, info: Info) -> Partner:
        return Partner.of(info, self.flow.source)

    @strawberry.field
    def to_partner(self, info: Info) -> Partner:
        return Partner.of(info, self.flow.target)

    @strawberry.field(description="Source points converted (fees included), net of reversals.")
    def points_out(self) -> Int64:
        return self.flow.points_out

    @strawberry.field(description="Target points those conversions gave, net of reversals.")
    def points_in(self) -> Int64:
        return self.flow.points_in

    @strawberry.field(
        description="`fromPartner`'s points that paid for rewards of `toPartner` (the "
        "conversions paying for them are in pointsOut and pointsIn too)."
    )
    def reward_points(self) -> Int64:
        return self.flow.reward_points


@strawberry.type(description="Cross-brand flows over a range.")
class CrossBrandFlowsReport:
    flows: list[CrossBrandFlow]
    first_day: date = strawberry.field(description="The range's first UTC day.")
    last_day: date = strawberry.field(description="The range's last UTC day, included.")
    as_of: datetime | None = strawberry.field(
        description="When the last event the figures include occurred (null: none yet)."
    )


def _visible(info: Info, partner: str | None) -> str | None:
    """The partner a caller may see (None: all, operators only); refuses anyone else."""
    access = info.context.access
    if partner is not None and partner not in info.context.service.coalition.partners:
        raise DomainError(ErrorCode.UNKNOWN_PARTNER, f"No partner '{partner}'.", ("partner",))
    if access.is_operator:
        return partner
    own = access.partner
    if own is None:
        raise denied("Analytics are for operators and partners' apps.")
    if partner is not None and partner != own:
        raise denied(f"Your token acts for '{own}', not '{partner}'.", ("partner",))
    return own


@strawberry.type
class AnalyticsQueries:
    @strawberry.field(
        description="Points issued, redeemed, expired and converted per UTC day, ISO week or "
        "month of [since, until) (whole UTC days: a bound inside a day takes that day), "
        f"at most {MAX_BUCKETS} buckets; outstanding points and their value at the end of each; "
        "breakage and the redemption rate over the range. `partner` null: every partner "
        "together (operators), a partner's app's own partner."
    )
    async def earn_burn(
        self,
        info: Info,
        since: datetime,
        until: datetime,
        partner: str | None = None,
        granularity: Granularity = DomainGranularity.DAY,  # type: ignore[valid-type]
    ) -> EarnBurnReport:
        chosen = _visible(info, partner)
        partners = None if chosen is None else [chosen]
        try:
            report = await AnalyticsService(info.context.service).earn_burn(
                partners, since, until, granularity
            )
        except RangeError as error:
            raise ArgumentError(str(error)) from None
        return EarnBurnReport(report=report, granularity=granularity)

    @strawberry.field(
        description="Who converted or redeemed whose points in [since, until) (whole UTC "
        "days), per pair of partners. Operators see every pair; a partner's app those "
        "its partner is in."
    )
    async def cross_brand_flows(
        self, info: Info, since: datetime, until: datetime
    ) -> CrossBrandFlowsReport:
        chosen = _visible(info, None)
        service = AnalyticsService(info.context.service)
        try:
            found, at = await service.flows(chosen, since, until)
            first, last = days(since, until)
        except RangeError as error:
            raise ArgumentError(str(error)) from None
        return CrossBrandFlowsReport(
            flows=[CrossBrandFlow(flow=flow) for flow in found],
            first_day=first,
            last_day=last,
            as_of=at,
        )
