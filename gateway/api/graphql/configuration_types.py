"""Types of the configuration managed at run time: changes, and the inputs of partners,
conversion rules and earning rules (each turned into the fields of a partner's file)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry

from gateway.api.graphql.partner_types import Partner, Rounding
from gateway.api.graphql.payloads import UserError
from gateway.api.graphql.scalars import Int64
from gateway.configuration.store import Change
from partners.config.coalition import Rounding as DomainRounding
from partners.config.earning import Period as DomainPeriod

Table = dict[str, Any]

Period = strawberry.enum(DomainPeriod, name="EarningPeriod", description="A calendar period (UTC).")


@strawberry.type(description="A change of the configuration: who made it, when, and what it did.")
class ConfigurationChange:
    record: strawberry.Private[Change]

    @strawberry.field
    def number(self) -> Int64:
        return self.record.id

    @strawberry.field
    def changed_at(self) -> datetime:
        return self.record.changed_at

    @strawberry.field(description="The operator (or `bootstrap`, or a command) that changed it.")
    def changed_by(self) -> str:
        return self.record.changed_by

    @strawberry.field(description="`api`, `apply` (coalition config apply) or `bootstrap`.")
    def source(self) -> str:
        return self.record.source

    @strawberry.field(description="One line per difference.")
    def lines(self) -> list[str]:
        return self.record.summary.splitlines()


@strawberry.type
class ConfigurationPayload:
    change: ConfigurationChange | None = strawberry.field(
        default=None, description="Null for a dry run, or when nothing changed."
    )
    lines: list[str] = strawberry.field(
        default_factory=list, description="What the change does (or would do), a line each."
    )
    partner: Partner | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


def _set(table: Table, key: str, value: Any) -> None:
    if value is not None:
        table[key] = str(value) if isinstance(value, Decimal) else value


@strawberry.input(description="How purchases earn points: replaces the partner's earn rate.")
class EarnRateInput:
    points_per_unit: Decimal
    rounding: Rounding = DomainRounding.DOWN  # type: ignore[valid-type]
    purchase_currency: str | None = None

    def table(self) -> Table:
        table: Table = {"points_per_unit": str(self.points_per_unit)}
        table["rounding"] = DomainRounding(self.rounding).value
        _set(table, "purchase_currency", self.purchase_currency)
        return table


@strawberry.input(description="Sign-in through the partner's OpenID Connect provider.")
class SignInInput:
    issuer: str | None = strawberry.field(
        default=None, description="The provider's issuer URL (https)."
    )
    development: bool | None = strawberry.field(
        default=None, description="The gateway's bundled development provider (not in production)."
    )
    customer_id_claim: str | None = strawberry.field(
        default=None, description="The ID-token claim carrying the partner's customer id."
    )

    def table(self) -> Table:
        table: Table = {}
        _set(table, "issuer", self.issuer)
        _set(table, "development", self.development)
        _set(table, "customer_id_claim", self.customer_id_claim)
        return table


@strawberry.input(description="Fields left out (null) keep their value.")
class PartnerSettingsInput:
    name: str | None = None
    currency_name: str | None = strawberry.field(default=None, description='e.g. "miles".')
    point_value: Decimal | None = strawberry.field(
        default=None, description="What one point is worth in the settlement currency."
    )
    earn_rate: EarnRateInput | None = None
    step_up_points: Int64 | None = strawberry.field(
        default=None,
        description="Spending more than this many points at once needs a multi-factor sign-in.",
    )
    sign_in: SignInInput | None = None

    def table(self) -> Table:
        table: Table = {}
        _set(table, "name", self.name)
        if self.currency_name is not None:
            table["currency"] = {"name": self.currency_name}
        _set(table, "point_value", self.point_value)
        if self.earn_rate is not None:
            table["earn"] = self.earn_rate.table()
        if self.step_up_points is not None:
            table["step_up"] = {"points": self.step_up_points}
        if self.sign_in is not None:
            table["sign_in"] = self.sign_in.table()
        return table


@strawberry.input
class UpdatePartnerInput:
    partner: str
    settings: PartnerSettingsInput
    effective_from: datetime | None = strawberry.field(
        default=None, description="When the change takes effect: now, or later."
    )
    dry_run: bool = strawberry.field(default=False, description="Only say what would change.")


@strawberry.input(description="A new partner, with a pool kept by the gateway.")
class CreatePartnerInput:
    slug: str
    name: str
    currency_code: str
    currency_name: str
    point_value: Decimal
    earn_rate: EarnRateInput
    step_up_points: Int64 | None = None
    sign_in: SignInInput | None = None
    dry_run: bool = False

    def table(self) -> Table:
        table: Table = {
            "name": self.name,
            "currency": {"code": self.currency_code, "name": self.currency_name},
            "point_value": str(self.point_value),
            "earn": self.earn_rate.table(),
        }
        if self.step_up_points is not None:
            table["step_up"] = {"points": self.step_up_points}
        if self.sign_in is not None:
            table["sign_in"] = self.sign_in.table()
        return table


@strawberry.input(
    description="A directed conversion rule from `effectiveFrom`. Terms left out are those of "
    "the rule in force then for the pair (for a new pair: no fee, 1 to 1,000,000,000 points)."
)
class SetConversionRuleInput:
    from_partner: str
    to_partner: str
    rate: Decimal = strawberry.field(description="Target points per source point.")
    fee_percent: Decimal | None = None
    fee_fixed: Int64 | None = None
    min_points: Int64 | None = None
    max_points: Int64 | None = None
    enabled: bool | None = None
    effective_from: datetime | None = strawberry.field(
        default=None,
        description="Now when left out. The rule in force then ends then; a later rule that "
        "would start within this one is withdrawn.",
    )
    effective_until: datetime | None = strawberry.field(
        default=None, description="Left out: until the next later rule starts, or for good."
    )
    dry_run: bool = False

    def terms(self) -> Table:
        """The terms given, as a rule's table."""
        table: Table = {"to": self.to_partner, "rate": str(self.rate)}
        _set(table, "fee_percent", self.fee_percent)
        _set(table, "fee_fixed", self.fee_fixed)
        _set(table, "min_points", self.min_points)
        _set(table, "max_points", self.max_points)
        _set(table, "enabled", self.enabled)
        return table


@strawberry.input(description="End a conversion rule (one that has not started is withdrawn).")
class EndConversionRuleInput:
    from_partner: str
    to_partner: str
    effective_from: datetime = strawberry.field(description="The rule's start: it names the rule.")
    at: datetime | None = strawberry.field(default=None, description="Now when left out.")
    dry_run: bool = False


@strawberry.input
class MultiplierInput:
    sku: str | None = None
    category: str | None = None
    factor: Decimal

    def table(self) -> Table:
        table: Table = {"factor": str(self.factor)}
        _set(table, "sku", self.sku)
        _set(table, "category", self.category)
        return table


@strawberry.input
class FrequencyBonusInput:
    every: int = strawberry.field(description="The every-th purchase in the period earns it.")
    period: Period  # type: ignore[valid-type]
    points: Int64

    def table(self) -> Table:
        return {
            "every": self.every,
            "period": DomainPeriod(self.period).value,
            "points": self.points,
        }


@strawberry.input
class ActivityInput:
    kind: str = strawberry.field(description="survey, review or social_share.")
    points: Int64
    cap: int
    period: Period  # type: ignore[valid-type]

    def table(self) -> Table:
        period = DomainPeriod(self.period).value
        return {"kind": self.kind, "points": self.points, "cap": self.cap, "period": period}


@strawberry.input
class ReturnsInput:
    when_spent: str = strawberry.field(description="negative or cap.")
    negative_limit: Int64 | None = None

    def table(self) -> Table:
        table: Table = {"when_spent": self.when_spent}
        _set(table, "negative_limit", self.negative_limit)
        return table


@strawberry.input
class ReferralInput:
    referrer_points: Int64
    referred_points: Int64
    min_purchase: Decimal = Decimal(0)

    def table(self) -> Table:
        return {
            "referrer_points": self.referrer_points,
            "referred_points": self.referred_points,
            "min_purchase": str(self.min_purchase),
        }


@strawberry.input(
    description="A partner's earning rules beyond its earn rate; each left out is removed. "
    "Promotions are managed with createPromotion."
)
class EarningRulesInput:
    multipliers: list[MultiplierInput] = strawberry.field(default_factory=list)
    signup_bonus: Int64 | None = None
    frequency_bonus: FrequencyBonusInput | None = None
    activities: list[ActivityInput] = strawberry.field(default_factory=list)
    pending_days: int | None = strawberry.field(
        default=None, description="Earned points stay pending (not spendable) this many days."
    )
    returns: ReturnsInput | None = None
    referral: ReferralInput | None = None

    def table(self) -> Table:
        table: Table = {}
        if self.multipliers:
            table["multipliers"] = [m.table() for m in self.multipliers]
        if self.signup_bonus is not None:
            table["signup_bonus"] = {"points": self.signup_bonus}
        if self.frequency_bonus is not None:
            table["frequency_bonus"] = self.frequency_bonus.table()
        if self.activities:
            table["activities"] = [a.table() for a in self.activities]
        if self.pending_days is not None:
            table["pending"] = {"return_window_days": self.pending_days}
        if self.returns is not None:
            table["returns"] = self.returns.table()
        if self.referral is not None:
            table["referral"] = self.referral.table()
        return table


@strawberry.input
class SetEarningRulesInput:
    partner: str
    rules: EarningRulesInput
    effective_from: datetime | None = None
    dry_run: bool = False
