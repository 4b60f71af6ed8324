"""Point-of-sale holds over GraphQL: authorize, capture (in full or in part), void."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import strawberry
from strawberry import relay

from gateway.api.graphql.access import check_spending
from gateway.api.graphql.context import Info
from gateway.api.graphql.partner_types import Partner
from gateway.api.graphql.payloads import IDEMPOTENCY_KEY, MemberReferenceInput, UserError
from gateway.api.graphql.scalars import Int64, decode_int_id
from gateway.api.graphql.types import HoldStatus, Transfer, Wallet
from gateway.holds.service import HoldPosting, HoldRecord
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.ledger.records import WalletRecord


@strawberry.type(
    description="Points set aside for a point-of-sale redemption: captured (in full or in "
    "part), voided, or released by the gateway when it expires."
)
class Hold(relay.Node):
    hold_id: relay.NodeID[int]
    record: strawberry.Private[HoldRecord]

    @classmethod
    def of(cls, record: HoldRecord) -> Hold:
        return cls(hold_id=record.id, record=record)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Hold | None]:
        ids = [int(i) if i.isdigit() and len(i) < 19 else 0 for i in node_ids]
        records = await info.context.loaders.holds.load_many(ids)
        return [
            cls.of(record) if record and await sees_hold(info, record) else None
            for record in records
        ]

    @strawberry.field
    def partner(self, info: Info) -> Partner:
        return Partner.of(info, self.record.partner)

    @strawberry.field(description="Points held.")
    def points(self) -> Int64:
        return self.record.points

    @strawberry.field(description="Points captured, once captured.")
    def captured_points(self) -> Int64 | None:
        return self.record.captured_points

    @strawberry.field
    def status(self) -> HoldStatus:
        return HoldStatus(self.record.status)

    @strawberry.field
    def reason(self) -> str | None:
        return self.record.reason

    @strawberry.field
    def created_at(self) -> datetime:
        return self.record.created_at

    @strawberry.field(description="When the gateway releases the hold unless settled before.")
    def expires_at(self) -> datetime:
        return self.record.expires_at

    @strawberry.field
    def settled_at(self) -> datetime | None:
        return self.record.settled_at

    @strawberry.field(description="The transfer that set the points aside.")
    async def hold_transfer(self, info: Info) -> Transfer | None:
        record = await info.context.loaders.transfers.load(self.record.hold_transfer_id)
        return Transfer.of(record) if record else None

    @strawberry.field(description="The transfer that captured or released it.")
    async def settle_transfer(self, info: Info) -> Transfer | None:
        if self.record.settle_transfer_id is None:
            return None
        record = await info.context.loaders.transfers.load(self.record.settle_transfer_id)
        return Transfer.of(record) if record else None


async def sees_hold(info: Info, record: HoldRecord) -> bool:
    access = info.context.access
    if access.partner is not None and access.partner != record.partner:
        return False
    member = await info.context.loaders.members.load(record.member_id)
    return member is not None and await info.context.sees_member(member.id)


@strawberry.input
class AuthorizeRedemptionInput:
    partner: str = strawberry.field(description="The partner's slug: its pool is held.")
    member: MemberReferenceInput
    points: Int64 = strawberry.field(description="Points to set aside.")
    idempotency_key: str = strawberry.field(description=IDEMPOTENCY_KEY)
    expires_in_seconds: int = strawberry.field(
        default=900, description="How long the hold lasts unless settled (1 s to 7 days)."
    )
    reason: str | None = None


@strawberry.input
class CaptureRedemptionInput:
    hold_id: strawberry.ID
    idempotency_key: str = strawberry.field(description=IDEMPOTENCY_KEY)
    points: Int64 | None = strawberry.field(
        default=None, description="Points to capture; leave out for all. The rest is released."
    )


@strawberry.input
class VoidRedemptionInput:
    hold_id: strawberry.ID
    idempotency_key: str = strawberry.field(description=IDEMPOTENCY_KEY)


@strawberry.type
class HoldPayload:
    hold: Hold | None = None
    transfer: Transfer | None = None
    wallet: Wallet | None = strawberry.field(
        default=None, description="The member's wallet at the partner as this left it."
    )
    idempotent_replay: bool = False
    user_errors: list[UserError] = strawberry.field(default_factory=list)

    @classmethod
    async def of(cls, info: Info, done: HoldPosting) -> HoldPayload:
        posting = done.posting
        balance = posting.balance_after(done.hold.partner)
        member_id = posting.transfer.member_id
        wallet = None
        if balance is not None and member_id is not None and not posting.replayed:
            wallet = Wallet(record=WalletRecord(member_id, done.hold.partner, balance))
        else:  # a replay, or a full capture (no wallet leg): the wallet as it stands
            member = await info.context.loaders.members.load(done.hold.member_id)
            if member is not None:
                held = await info.context.loaders.wallets.load(member.id)
                current = next((w for w in held if w.pool == done.hold.partner), None)
                wallet = Wallet(record=current or WalletRecord(member.id, done.hold.partner, 0))
        info.context.loaders.held.clear_all()
        return cls(
            hold=Hold.of(done.hold),
            transfer=Transfer.of(posting.transfer),
            wallet=wallet,
            idempotent_replay=posting.replayed,
        )


async def _open_hold(info: Info, value: strawberry.ID) -> HoldRecord:
    hold_id = decode_int_id(str(value), "Hold")
    record = await info.context.loaders.holds.load(hold_id) if hold_id else None
    if record is None or not await sees_hold(info, record):
        raise DomainError(ErrorCode.UNKNOWN_HOLD, "No such hold.", ("hold_id",))
    info.context.access.act_at(record.partner, "points:redeem", ("hold_id",))
    return record


@strawberry.type
class HoldMutations:
    @strawberry.mutation(
        description="Set points aside for a point-of-sale redemption: the available "
        "balance drops at once; capture or void the hold later."
    )
    async def authorize_redemption(
        self, info: Info, input: AuthorizeRedemptionInput
    ) -> HoldPayload | None:
        try:
            member, step_up = await check_spending(info, input.partner, input.member, input.points)
            done = await info.context.holds.authorize(
                input.partner,
                member,
                input.points,
                input.idempotency_key,
                timedelta(seconds=max(0, min(input.expires_in_seconds, 10**7))),
                input.reason,
                caller=info.context.access.member_id,
                step_up=step_up,
            )
        except DomainError as error:
            return HoldPayload(user_errors=UserError.of(error))
        return await HoldPayload.of(info, done)

    @strawberry.mutation(
        description="Complete a hold, in full or in part; the rest goes back to the member. "
        "A hold is settled once: a capture racing a void, or a second capture, is "
        "HOLD_NOT_OPEN."
    )
    async def capture_redemption(
        self, info: Info, input: CaptureRedemptionInput
    ) -> HoldPayload | None:
        try:
            hold = await _open_hold(info, input.hold_id)
            done = await info.context.holds.capture(hold.id, input.idempotency_key, input.points)
        except DomainError as error:
            return HoldPayload(user_errors=UserError.of(error))
        info.context.loaders.holds.clear(hold.id)
        return await HoldPayload.of(info, done)

    @strawberry.mutation(description="Release a hold: its points are available again.")
    async def void_redemption(self, info: Info, input: VoidRedemptionInput) -> HoldPayload | None:
        try:
            hold = await _open_hold(info, input.hold_id)
            done = await info.context.holds.void(hold.id, input.idempotency_key)
        except DomainError as error:
            return HoldPayload(user_errors=UserError.of(error))
        info.context.loaders.holds.clear(hold.id)
        return await HoldPayload.of(info, done)
