"""Expiry over GraphQL: the `breakage` report per partner (a wallet's `expiring` points are
on `Wallet`)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from gateway.api.graphql.context import Info
from gateway.api.graphql.errors import ArgumentError
from gateway.api.graphql.money import Money, money
from gateway.api.graphql.partner_types import Partner
from gateway.api.graphql.scalars import Int64
from gateway.expiry.report import Breakage
from gateway.expiry.service import ExpiryService
from gateway.kernel.errors import DomainError
from partners.config.expiry import ExpiryPolicy as DomainExpiryPolicy
from partners.config.expiry import ExpiryRule as DomainExpiryRule

ExpiryRule = strawberry.enum(
    DomainExpiryRule,
    name="ExpiryRule",
    description="When a partner's points expire: AFTER_EARNING (months after each earn), "
    "AFTER_INACTIVITY (all of them, after months without any transfer of the member in the "
    "coalition) or NEVER.",
)


@strawberry.type(description="A partner's expiry policy.")
class ExpiryPolicy:
    policy: strawberry.Private[DomainExpiryPolicy]

    @strawberry.field
    def rule(self) -> ExpiryRule:  # type: ignore[valid-type]
        return self.policy.rule

    @strawberry.field(description="The months of the rule; null for NEVER.")
    def months(self) -> int | None:
        return self.policy.months if self.policy.expires else None

    @strawberry.field(description="The rule in words.")
    def description(self) -> str:
        return self.policy.describe()


@strawberry.type(description="A partner's points that expired unspent (breakage) in a period.")
class BreakageReport:
    record: strawberry.Private[Breakage]

    @strawberry.field
    def partner(self, info: Info) -> Partner:
        return Partner.of(info, self.record.partner)

    @strawberry.field(description="Points expired, net of expiries an operator undid.")
    def points(self) -> Int64:
        return self.record.points

    @strawberry.field(description="Their worth in the settlement currency at the point value.")
    def value(self, info: Info) -> Money:
        return money(info, self.record.value)

    @strawberry.field(description="Expiry transfers in the period (one per wallet and run).")
    def expiries(self) -> Int64:
        return self.record.expiries

    @strawberry.field(description="The period's start, as asked (null: from the beginning).")
    def since(self) -> datetime | None:
        return self.record.since

    @strawberry.field(description="The period's end, excluded (null: until now).")
    def until(self) -> datetime | None:
        return self.record.until

    @strawberry.field(
        description="The partner's policy now; null when points never expire in the gateway "
        "(no policy, or points kept in the partner's own system)."
    )
    def policy(self) -> ExpiryPolicy | None:
        found = self.record.policy
        return ExpiryPolicy(policy=found) if found is not None else None


@strawberry.type
class ExpiryQueries:
    @strawberry.field(
        description="Points of a partner that expired in [since, until), and their value. "
        "Operators see every partner's; a partner's app its own; null otherwise."
    )
    async def breakage(
        self,
        info: Info,
        partner: str,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> BreakageReport | None:
        access = info.context.access
        if not (access.is_operator or access.partner == partner):
            return None
        if partner not in info.context.service.coalition.partners:
            return None
        for name, moment in (("since", since), ("until", until)):
            if moment is not None and moment.utcoffset() is None:
                raise ArgumentError(f"`{name}` needs a UTC offset, e.g. 2026-01-01T00:00:00Z.")
        try:
            report = await ExpiryService(info.context.service).breakage(partner, since, until)
        except DomainError as error:
            raise ArgumentError(error.message) from None
        return BreakageReport(record=report)
