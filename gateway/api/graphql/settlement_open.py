"""The open obligations over GraphQL (operators only): what partners owe each other that
no closed period holds yet, per pair and per partner; with ``until``, exactly what closing a
period ending then would take (before the operator's fees, which the close charges)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from gateway.api.graphql.context import Info
from gateway.api.graphql.errors import ArgumentError
from gateway.api.graphql.money import Money, money
from gateway.api.graphql.scalars import Int64
from gateway.kernel.errors import DomainError
from gateway.settlement.open_obligations import OpenObligations as Found
from gateway.settlement.open_obligations import OpenPair

ZERO = Decimal(0)


@strawberry.type(description="Open obligations of one debtor to one creditor, added up.")
class OpenObligationPair:
    record: strawberry.Private[OpenPair]

    @strawberry.field(description="The partner who owes.")
    def debtor(self) -> str:
        return self.record.debtor

    @strawberry.field(description="The partner owed (or `operator`).")
    def creditor(self) -> str:
        return self.record.creditor

    @strawberry.field(description="What the debtor owes the creditor, counted to 6 places.")
    def amount(self, info: Info) -> Money:
        return money(info, self.record.amount)

    @strawberry.field
    def obligation_count(self) -> Int64:
        return self.record.count

    @strawberry.field
    def first_created_at(self) -> datetime:
        return self.record.first_at

    @strawberry.field
    def last_created_at(self) -> datetime:
        return self.record.last_at


@strawberry.type(description="A partner's open position: what it owes and is owed.")
class OpenPosition:
    partner: str
    payable_amount: strawberry.Private[Decimal]
    receivable_amount: strawberry.Private[Decimal]

    @strawberry.field(description="What the partner owes others.")
    def payable(self, info: Info) -> Money:
        return money(info, self.payable_amount)

    @strawberry.field(description="What others owe the partner.")
    def receivable(self, info: Info) -> Money:
        return money(info, self.receivable_amount)

    @strawberry.field(description="receivable - payable: positive when the partner is owed.")
    def net(self, info: Info) -> Money:
        return money(info, self.receivable_amount - self.payable_amount)


@strawberry.type(description="Obligations no closed settlement period holds yet.")
class OpenObligations:
    record: strawberry.Private[Found]
    partners: strawberry.Private[list[str]]

    @strawberry.field(description="The last closed period's end; null before the first close.")
    def since(self) -> datetime | None:
        return self.record.since

    @strawberry.field(description="The end asked for (excluded); null: every open obligation.")
    def until(self) -> datetime | None:
        return self.record.until

    @strawberry.field(description="The settlement currency of the amounts.")
    def currency(self, info: Info) -> str:
        return info.context.service.coalition.settlement_currency

    @strawberry.field
    def obligation_count(self) -> Int64:
        return self.record.count

    @strawberry.field(description="All open obligations' amounts added up.")
    def total(self, info: Info) -> Money:
        return money(info, self.record.total)

    @strawberry.field(description="Per debtor and creditor, by debtor then creditor.")
    def pairs(self) -> list[OpenObligationPair]:
        return [OpenObligationPair(record=pair) for pair in self.record.pairs]

    @strawberry.field(description="Every partner's payable, receivable and net, by slug.")
    def positions(self) -> list[OpenPosition]:
        parties = sorted(
            set(self.partners)
            | {p.debtor for p in self.record.pairs}
            | {p.creditor for p in self.record.pairs}
        )
        return [
            OpenPosition(
                partner=party,
                payable_amount=sum(
                    (p.amount for p in self.record.pairs if p.debtor == party), ZERO
                ),
                receivable_amount=sum(
                    (p.amount for p in self.record.pairs if p.creditor == party), ZERO
                ),
            )
            for party in parties
        ]


@strawberry.type
class OpenObligationQueries:
    @strawberry.field(
        description="Obligations no closed settlement period holds yet, per pair and "
        "partner (operators only; null for others). With `until`, those created before it: "
        "what `closeSettlementPeriod(periodEnd: until)` would take, before the operator's "
        "fees the close charges."
    )
    async def open_obligations(
        self, info: Info, until: datetime | None = None
    ) -> OpenObligations | None:
        if not info.context.access.is_operator:
            return None
        try:
            found = await info.context.settlement.open_obligations(until)
        except DomainError as error:
            raise ArgumentError(error.message) from None
        return OpenObligations(
            record=found, partners=sorted(info.context.service.coalition.partners)
        )
