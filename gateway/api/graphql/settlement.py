"""Settlement over GraphQL: close a period (operators), read periods and statements; and
a statement's CSV download.

Operators see every statement; a partner's app sees the periods and its own statements
only (another partner's is null, or 404 as CSV); members see none.
"""

from __future__ import annotations

from datetime import datetime

import strawberry
from starlette.responses import JSONResponse, Response, StreamingResponse

from gateway.api.graphql.context import Info
from gateway.api.graphql.errors import ArgumentError
from gateway.api.graphql.money import Money, money
from gateway.api.graphql.payloads import UserError
from gateway.api.graphql.scalars import Int64, decode_int_id, encode_id
from gateway.auth.policy import Access
from gateway.kernel.errors import DomainError
from gateway.settlement.records import Direction as DomainDirection
from gateway.settlement.records import Period, Position, Statement
from gateway.settlement.service import SettlementError, SettlementService
from partners.config.reader import SLUG

SettlementDirection = strawberry.enum(
    DomainDirection,
    name="SettlementDirection",
    description="Who owes whom in a bilateral position, seen from the statement's partner.",
)
MAX_PERIODS = 100


def period_number(value: str) -> int | None:
    """A period's number from its global id (``SettlementPeriod.id``) or the number itself."""
    if value.isdigit() and len(value) <= 18:
        return int(value)
    return decode_int_id(value, "SettlementPeriod")


def csv_path(period_id: int, partner: str) -> str:
    return f"/settlement/{period_id}/{partner}.csv"


@strawberry.type(description="A partner's net position against one counterparty in a period.")
class BilateralPosition:
    record: strawberry.Private[Position]

    @strawberry.field(description="The other partner, or `operator` for the operator's fees.")
    def counterparty(self) -> str:
        return self.record.counterparty

    @strawberry.field
    def direction(self) -> SettlementDirection:  # type: ignore[valid-type]
        return self.record.direction

    @strawberry.field(description="Signed: positive when the counterparty owes the partner.")
    def net(self, info: Info) -> Money:
        return money(info, self.record.net)

    @strawberry.field(description="What the one who owes pays: the net without its sign.")
    def amount(self, info: Info) -> Money:
        return money(info, abs(self.record.net))


@strawberry.type(description="A partner's settlement statement for a closed period.")
class SettlementStatement:
    record: strawberry.Private[Statement]

    @strawberry.field(description="The period's number (`SettlementPeriod.number`).")
    def period_number(self) -> int:
        return self.record.period_id

    @strawberry.field(description="The partner's slug.")
    def partner(self) -> str:
        return self.record.partner

    @strawberry.field(description="What the partner owes other partners, in total.")
    def gross_payable(self, info: Info) -> Money:
        return money(info, self.record.gross_payable)

    @strawberry.field(description="What other partners owe the partner, in total.")
    def gross_receivable(self, info: Info) -> Money:
        return money(info, self.record.gross_receivable)

    @strawberry.field(
        description="The operator's fees: per point issued, and on conversions out of its "
        "points (net of reversals, so it can be negative)."
    )
    def fees(self, info: Info) -> Money:
        return money(info, self.record.fees)

    @strawberry.field(
        description="grossReceivable - grossPayable - fees: the partner's multilateral net "
        "position against the coalition (positive: it is owed money)."
    )
    def net(self, info: Info) -> Money:
        return money(info, self.record.net)

    @strawberry.field(description="Net positions against each counterparty; they add up to net.")
    def bilateral(self) -> list[BilateralPosition]:
        return [BilateralPosition(record=position) for position in self.record.positions]

    @strawberry.field(description="Obligations of the period the partner is a party to.")
    def obligation_count(self) -> Int64:
        return self.record.obligation_count

    @strawberry.field(description="Where to download it as CSV (same authentication).")
    def csv_path(self) -> str:
        return csv_path(self.record.period_id, self.record.partner)


@strawberry.type(description="A closed settlement period: it never changes.")
class SettlementPeriod:
    record: strawberry.Private[Period]

    @strawberry.field(description="A global id; `settlementStatement` takes it (or `number`).")
    def id(self) -> strawberry.ID:
        return strawberry.ID(encode_id("SettlementPeriod", self.record.id))

    @strawberry.field(description="1 for the first period closed, then 2, ...")
    def number(self) -> int:
        return self.record.id

    @strawberry.field(description="The previous period's end; null for the first period.")
    def opens_at(self) -> datetime | None:
        return self.record.opens_at

    @strawberry.field(
        description="The end (exclusive): the period holds the obligations created before "
        "it that no earlier period holds."
    )
    def closes_at(self) -> datetime:
        return self.record.closes_at

    @strawberry.field
    def closed_at(self) -> datetime:
        return self.record.closed_at

    @strawberry.field(description="Who closed it; operators only (null for others).")
    def closed_by(self, info: Info) -> str | None:
        return self.record.closed_by if info.context.access.is_operator else None

    @strawberry.field(description="The settlement currency of its amounts.")
    def currency(self) -> str:
        return self.record.currency

    @strawberry.field(description="Obligations in the period, the operator's fees included.")
    def obligation_count(self) -> Int64:
        return self.record.obligation_count

    @strawberry.field(description="Its statements: all for operators, a partner's app its own.")
    async def statements(self, info: Info) -> list[SettlementStatement]:
        access = info.context.access
        if not access.is_operator and access.partner is None:
            return []
        found = await info.context.settlement.statements(self.record.id, access.partner)
        return [SettlementStatement(record=record) for record in found]


@strawberry.input
class CloseSettlementPeriodInput:
    period_end: datetime = strawberry.field(
        description="The period's end (exclusive), with a time zone, e.g. "
        '"2026-12-01T00:00:00Z"; not in the future, and after the last period\'s end. '
        "The end of a period already closed returns that period (a retry)."
    )


@strawberry.type
class CloseSettlementPeriodPayload:
    period: SettlementPeriod | None = None
    idempotent_replay: bool = strawberry.field(
        default=False, description="True when this end was closed before: nothing changed."
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class SettlementQueries:
    @strawberry.field(
        description="Closed settlement periods, the latest first: for operators and "
        "partners' apps (members get none)."
    )
    async def settlement_periods(self, info: Info, first: int = 50) -> list[SettlementPeriod]:
        if not 0 <= first <= MAX_PERIODS:
            raise ArgumentError(f"`first` must be between 0 and {MAX_PERIODS}.")
        access = info.context.access
        if not access.is_operator and access.partner is None:
            return []
        found = await info.context.settlement.periods(first)
        return [SettlementPeriod(record=record) for record in found]

    @strawberry.field(
        description="A partner's statement for a closed period (`periodId`: the period's id "
        "or number). Operators may read any; a partner's app only its own; null otherwise "
        "or when there is none."
    )
    async def settlement_statement(
        self, info: Info, period_id: strawberry.ID, partner: str
    ) -> SettlementStatement | None:
        access = info.context.access
        if not access.is_operator and access.partner != partner:
            return None
        number = period_number(str(period_id))
        if number is None:
            return None
        found = await info.context.settlement.statement(number, partner)
        return SettlementStatement(record=found) if found else None


@strawberry.type
class SettlementMutations:
    @strawberry.mutation(
        description="Close the settlement period ending at `periodEnd` (operators only): "
        "every obligation created before it that no earlier period holds, and the "
        "operator's fees, go into exactly one statement per partner. Retrying with the "
        "same end returns the period closed the first time."
    )
    async def close_settlement_period(
        self, info: Info, input: CloseSettlementPeriodInput
    ) -> CloseSettlementPeriodPayload | None:
        try:
            info.context.access.require_operator()
            principal = info.context.principal
            by = getattr(principal, "subject", "operator")
            period = await info.context.settlement.close(input.period_end, f"operator:{by}")
        except (SettlementError, DomainError) as error:
            return CloseSettlementPeriodPayload(user_errors=UserError.of(error))
        return CloseSettlementPeriodPayload(
            period=SettlementPeriod(record=period), idempotent_replay=period.replayed
        )


async def statement_download(
    settlement: SettlementService, access: Access, period_text: str, partner: str
) -> Response:
    """``GET /settlement/{period}/{partner}.csv``: the statement as ``text/csv``, for an
    operator or that partner's app; 404 for anyone else and for a statement that does not
    exist, so that its existence is not revealed. Columns: ``settlement.CSV_COLUMNS``."""
    number = period_number(period_text)
    allowed = access.is_operator or access.partner == partner
    period = await settlement.period(number) if number and allowed and SLUG.match(partner) else None
    if period is None or await settlement.statement(period.id, partner) is None:
        return JSONResponse(
            {"errors": [{"message": "No such statement.", "extensions": {"code": "NOT_FOUND"}}]},
            status_code=404,
        )
    filename = f"settlement-{period.id}-{partner}.csv"
    return StreamingResponse(
        settlement.csv_lines(period, partner),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
