"""Mutation inputs and payloads, with ``userErrors`` for expected failures."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from gateway.api.graphql.context import Info
from gateway.api.graphql.members import Member
from gateway.api.graphql.money import Money, money
from gateway.api.graphql.partner_types import ConversionRule, Partner
from gateway.api.graphql.purchases import EarnAward, PurchaseInput
from gateway.api.graphql.scalars import Int64, decode_member_id
from gateway.api.graphql.types import Transfer, Wallet
from gateway.api.observability.metrics import record_user_error
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.kernel.validation import MAX_CUSTOMER_ID_LENGTH, clean_id, clean_text
from gateway.ledger.exchange import Quote
from gateway.ledger.records import MemberRef, Posting, WalletRecord

UserErrorCode = strawberry.enum(
    ErrorCode,
    name="UserErrorCode",
    description="Stable codes for expected failures; clients branch on these.",
)

IDEMPOTENCY_KEY = (
    "Your own unique reference for this call, e.g. the receipt or transaction number "
    "(at most 255 characters). Retrying with the same key returns the first answer and "
    "posts nothing new; the same key with different input is IDEMPOTENCY_KEY_REUSED. "
    "Keys are scoped per partner and operation (per member for conversions, per the "
    "original transfer's partner for reversals)."
)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@strawberry.type(description="An expected failure: nothing was changed.")
class UserError:
    code: UserErrorCode  # type: ignore[valid-type]
    field: list[str] | None = strawberry.field(description="Path to the input field at fault.")
    message: str

    @classmethod
    def of(cls, error: DomainError, argument: str | None = "input") -> list[UserError]:
        """The error, its field under ``argument`` (a mutation's ``input``; None for a
        query's own arguments). The resolver has placed the field where its input holds it
        (``DomainError.placed``); only the spelling changes here."""
        record_user_error(error.code.value)
        if not error.field:
            return [cls(code=error.code, field=None, message=error.message)]
        path = [*([argument] if argument else []), *(_camel(part) for part in error.field)]
        return [cls(code=error.code, field=path, message=error.message)]


@strawberry.input(
    one_of=True,
    description="A member, by their member id or by the operation's partner's customer id.",
)
class MemberReferenceInput:
    id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="The member's global id (`Member.id`)."
    )
    partner_customer_id: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="The customer id the operation's partner enrolled the member with.",
    )

    def resolve(self, partner: str) -> MemberRef:
        """The reference, checked: a customer id (and the partner it is looked up at) with
        control characters, blank or too long is INVALID_INPUT here, before it reaches the
        database (PostgreSQL cannot even compare text holding a NUL)."""
        if self.id is not None and self.id is not strawberry.UNSET:
            member_id = decode_member_id(str(self.id))
            if member_id is None:
                raise DomainError(ErrorCode.UNKNOWN_MEMBER, "No such member.", ("member", "id"))
            return MemberRef(id=member_id)
        customer_id = customer_id_of(self.partner_customer_id, ("member", "partner_customer_id"))
        clean_text(partner, "partner", MAX_CUSTOMER_ID_LENGTH, True)
        return MemberRef(partner=partner, customer_id=customer_id)


def customer_id_of(value: str | None, field: tuple[str, ...] = ("partner_customer_id",)) -> str:
    """A partner's customer id as sent, checked like ``enrolMember`` checks it; raises
    INVALID_INPUT at ``field``."""
    try:
        cleaned = clean_id(
            None if value is strawberry.UNSET else value,
            "partner_customer_id",
            MAX_CUSTOMER_ID_LENGTH,
        )
    except DomainError as error:
        raise DomainError(error.code, error.message, field) from None
    return cleaned


def member_id_of(value: strawberry.ID, field: str = "member_id") -> str:
    member_id = decode_member_id(str(value))
    if member_id is None:
        raise DomainError(ErrorCode.UNKNOWN_MEMBER, "No such member.", (field,))
    return member_id


@strawberry.input
class EnrolMemberInput:
    partner: str = strawberry.field(description="The enrolling partner's slug.")
    partner_customer_id: str = strawberry.field(
        description="The partner's own id for its customer; enrolling the same pair again "
        "returns the same member."
    )


@strawberry.type
class EnrolMemberPayload:
    member: Member | None = strawberry.field(
        default=None,
        description="The member; null for a partner's app without the members:read scope.",
    )
    member_id: strawberry.ID | None = strawberry.field(
        default=None, description="The member's global id, to reference them later."
    )
    created: bool | None = strawberry.field(
        default=None, description="False when the pair was already enrolled."
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input(description="Give exactly one of `points` and `purchaseAmount`.")
class EarnPointsInput:
    partner: str = strawberry.field(
        description="The partner's slug (see `partners`): its pool is the one posted to."
    )
    member: MemberReferenceInput = strawberry.field(description="Who earns.")
    idempotency_key: str = strawberry.field(description=IDEMPOTENCY_KEY)
    points: Int64 | None = strawberry.field(default=None, description="Points to award.")
    purchase_amount: Decimal | None = strawberry.field(
        default=None,
        description="A purchase in the partner's purchase currency: the partner's earning "
        "rules turn it into points (the same as `purchase: {amount}`).",
    )
    purchase: PurchaseInput | None = strawberry.field(
        default=None,
        description="A purchase with its lines (SKU, category): the partner's earning rules "
        "turn it into points; the payload's breakdown says which rule gave how many.",
    )
    reason: str | None = strawberry.field(default=None, description="Shown in the history.")


@strawberry.input
class RedeemPointsInput:
    partner: str = strawberry.field(
        description="The partner's slug (see `partners`): its pool is the one posted to."
    )
    member: MemberReferenceInput = strawberry.field(description="Who spends.")
    points: Int64 = strawberry.field(description="Points to take from the member's wallet.")
    idempotency_key: str = strawberry.field(description=IDEMPOTENCY_KEY)
    reason: str | None = strawberry.field(default=None, description="Shown in the history.")


@strawberry.type
class PointsPayload:
    transfer: Transfer | None = None
    wallet: Wallet | None = strawberry.field(
        default=None, description="The member's wallet at the partner as this transfer left it."
    )
    idempotent_replay: bool = strawberry.field(
        default=False, description="True when this answers a retry of an earlier call."
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, posting: Posting, pool: str) -> PointsPayload:
        return cls(
            transfer=Transfer.of(posting.transfer),
            wallet=_wallet_after(posting, pool),
            idempotent_replay=posting.replayed,
        )


@strawberry.type
class EarnPointsPayload(PointsPayload):
    breakdown: list[EarnAward] | None = strawberry.field(
        default=None, description="For a purchase: what each earning rule gave."
    )
    pending: bool = strawberry.field(
        default=False,
        description="The points are pending: spendable once the partner's return window ends.",
    )


@strawberry.type
class RedeemPointsPayload(PointsPayload):
    pass


def _wallet_after(posting: Posting, pool: str) -> Wallet | None:
    if posting.wallet is not None and posting.wallet.pool == pool:
        return Wallet(record=posting.wallet)  # with the held and owed points then
    balance = posting.balance_after(pool)
    member_id = posting.transfer.member_id
    if balance is None or member_id is None:
        return None
    return Wallet(record=WalletRecord(member_id, pool, balance))


@strawberry.input
class QuoteConversionInput:
    member_id: strawberry.ID = strawberry.field(description="The member's global id.")
    from_partner: str = strawberry.field(description="Slug of the partner whose points are given.")
    to_partner: str = strawberry.field(description="Slug of the partner whose points are received.")
    points: Int64 = strawberry.field(description="Source points to convert, fee included.")


@strawberry.input
class ConvertPointsInput:
    member_id: strawberry.ID = strawberry.field(description="The member's global id.")
    from_partner: str = strawberry.field(description="Slug of the partner whose points are given.")
    to_partner: str = strawberry.field(description="Slug of the partner whose points are received.")
    points: Int64 = strawberry.field(description="Source points to convert, fee included.")
    idempotency_key: str = strawberry.field(description=IDEMPOTENCY_KEY)


@strawberry.type(description="What a conversion would give now; nothing is posted.")
class ConversionQuote:
    quote: strawberry.Private[Quote]
    source_balance: Int64 = strawberry.field(
        description="The member's points at the source partner now."
    )

    @strawberry.field
    def from_partner(self, info: Info) -> Partner:
        return Partner.of(info, self.quote.source)

    @strawberry.field
    def to_partner(self, info: Info) -> Partner:
        return Partner.of(info, self.quote.target)

    @strawberry.field(description="Source points given, fee included.")
    def points(self) -> Int64:
        return self.quote.points

    @strawberry.field(description="The fee in source points.")
    def fee(self) -> Int64:
        return self.quote.fee

    @strawberry.field(description="Target points per source point.")
    def rate(self) -> Decimal:
        return self.quote.rate

    @strawberry.field(description="Target points received: (points - fee) * rate, rounded down.")
    def received_points(self) -> Int64:
        return self.quote.received

    @strawberry.field
    def rule(self) -> ConversionRule:
        return ConversionRule(rule=self.quote.rule)

    @strawberry.field
    def quoted_at(self) -> datetime:
        return self.quote.at

    @strawberry.field(description="The worth of the points given, in the settlement currency.")
    def value_given(self, info: Info) -> Money:
        partner = info.context.service.coalition.partners[self.quote.source]
        return money(info, partner.point_value * self.quote.points)

    @strawberry.field(description="The worth of the points received.")
    def value_received(self, info: Info) -> Money:
        partner = info.context.service.coalition.partners[self.quote.target]
        return money(info, partner.point_value * self.quote.received)

    @strawberry.field(description="Whether the member holds enough points for it now.")
    def sufficient_balance(self) -> bool:
        return self.source_balance >= self.quote.points


@strawberry.type
class QuoteConversionPayload:
    quote: ConversionQuote | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ConvertPointsPayload:
    transfer: Transfer | None = None
    from_wallet: Wallet | None = strawberry.field(
        default=None, description="The source wallet as this conversion left it."
    )
    to_wallet: Wallet | None = strawberry.field(
        default=None, description="The target wallet as this conversion left it."
    )
    idempotent_replay: bool = False
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input(
    description="Reverse a transfer: in full, or a part (several parts add up to at most it)."
)
class ReverseTransferInput:
    transfer_id: strawberry.ID = strawberry.field(description="The global id of the transfer.")
    idempotency_key: str = strawberry.field(description=IDEMPOTENCY_KEY)
    points: Int64 | None = strawberry.field(
        default=None,
        description="Points to reverse (of a conversion: source points); leave out to reverse "
        "all that is left.",
    )
    reason: str | None = strawberry.field(default=None, description="Why: shown in the history.")


@strawberry.type
class ReverseTransferPayload:
    reversal: Transfer | None = None
    idempotent_replay: bool = False
    user_errors: list[UserError] = strawberry.field(default_factory=list)


def conversion_payload(posting: Posting) -> ConvertPointsPayload:
    transfer = posting.transfer
    return ConvertPointsPayload(
        transfer=Transfer.of(transfer),
        from_wallet=_wallet_after(posting, transfer.partner),
        to_wallet=_wallet_after(posting, transfer.to_partner or ""),
        idempotent_replay=posting.replayed,
    )
