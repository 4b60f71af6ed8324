"""Gifting points over GraphQL: `giftPoints`.

Who may gift:

- a member, their own points (leave out `giver`, or name themself), with the partner's
  step-up rule: a gift is spending, so it counts with redemptions, conversions and holds
  towards the multi-factor threshold over 24 hours;
- a partner's app with `points:redeem`, in its own pool, on behalf of a member it sees
  (its till or app acting for a customer standing in front of it), to a receiver it sees;
- an operator, anything.

A member names the receiver by member id or by the partner's customer id for them; they
see nothing of the receiver but the gift in their own history.
"""

from __future__ import annotations

import strawberry

from gateway.api.graphql.access import check_member, spending
from gateway.api.graphql.context import Info
from gateway.api.graphql.payloads import IDEMPOTENCY_KEY, MemberReferenceInput, UserError
from gateway.api.graphql.scalars import Int64
from gateway.api.graphql.types import Transfer, Wallet
from gateway.gifting.service import GiftService
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.ledger.records import MemberRef, Posting, WalletRecord
from gateway.ledger.rules import AccountCode


def gifts(info: Info) -> GiftService:
    return GiftService(info.context.service)


@strawberry.input(description="Gift points to another member, in the same partner's pool.")
class GiftPointsInput:
    partner: str = strawberry.field(description="The partner's slug: its pool is the one used.")
    receiver: MemberReferenceInput = strawberry.field(
        description="Who receives: a member id, or the partner's customer id for them."
    )
    points: Int64 = strawberry.field(
        description="Points to give, within the partner's gifting limits."
    )
    idempotency_key: str = strawberry.field(description=IDEMPOTENCY_KEY)
    giver: MemberReferenceInput | None = strawberry.field(
        default=None,
        description="Whose points: leave out when a member gifts their own; required for a "
        "partner's app or an operator.",
    )
    message: str | None = strawberry.field(
        default=None, description="A note for the history (at most 500 characters)."
    )


@strawberry.type
class GiftPointsPayload:
    transfer: Transfer | None = None
    wallet: Wallet | None = strawberry.field(
        default=None, description="The giver's wallet at the partner as this gift left it."
    )
    idempotent_replay: bool = strawberry.field(
        default=False, description="True when this answers a retry of an earlier call."
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, posting: Posting) -> GiftPointsPayload:
        transfer = posting.transfer
        giver = transfer.member_id
        wallet = None
        for leg in posting.legs:
            if (
                leg.account is AccountCode.WALLET
                and leg.member_id == giver
                and leg.balance_after is not None
                and giver is not None
            ):
                wallet = Wallet(record=WalletRecord(giver, transfer.partner, leg.balance_after))
        return cls(
            transfer=Transfer.of(transfer), wallet=wallet, idempotent_replay=posting.replayed
        )


def _pointing_at(error: DomainError, field: str) -> DomainError:
    """An error about a member reference, pointed at ``field`` instead of ``member``."""
    if error.field[:1] != ("member",):
        return error
    return DomainError(error.code, error.message, (field, *error.field[1:]))


async def _giver(info: Info, input: GiftPointsInput) -> str:
    access = info.context.access
    if input.giver is None or input.giver is strawberry.UNSET:
        if access.member_id is None:
            raise DomainError(
                ErrorCode.INVALID_INPUT,
                "Name the member whose points are gifted.",
                ("giver",),
            )
        return access.member_id
    try:
        ref = input.giver.resolve(input.partner)
        found = await check_member(info, ref)
        return found or await info.context.service.resolve_member(ref)
    except DomainError as error:
        raise _pointing_at(error, "giver") from None


async def _receiver(info: Info, input: GiftPointsInput) -> MemberRef:
    try:
        ref = input.receiver.resolve(input.partner)
        if info.context.access.partner is not None:
            await check_member(info, ref)  # a partner's app reaches members it sees only
    except DomainError as error:
        raise _pointing_at(error, "receiver") from None
    return ref


@strawberry.type
class GiftMutations:
    @strawberry.mutation(
        description="Gift points to another member in the same partner's pool, within the "
        "partner's limits (per gift, and per giver and calendar month). A partner without "
        "gifting refuses with GIFT_LIMIT_EXCEEDED; a gift to oneself is SAME_MEMBER."
    )
    async def gift_points(self, info: Info, input: GiftPointsInput) -> GiftPointsPayload | None:
        try:
            service, access = info.context.service, info.context.access
            if access.partner is not None:
                access.act_at(input.partner, "points:redeem")
            config = service.partner(input.partner)
            service_gifts = gifts(info)
            service_gifts.check(input.partner, input.points)
            giver = await _giver(info, input)
            receiver = await _receiver(info, input)
            step_up = spending(info, config, input.points, giver)
            posting = await service_gifts.gift(
                input.partner,
                giver,
                receiver,
                input.points,
                input.idempotency_key,
                input.message,
                caller=access.member_id,
                step_up=step_up,
            )
        except DomainError as error:
            return GiftPointsPayload(user_errors=UserError.of(error))
        return GiftPointsPayload.of(posting)
