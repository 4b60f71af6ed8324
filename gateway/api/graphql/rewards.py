"""The rewards catalogue over GraphQL: browse, manage, and redeem with any pool's points."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

import strawberry
from strawberry import relay

from gateway.api.graphql.access import check_member, spending
from gateway.api.graphql.context import Info
from gateway.api.graphql.errors import ArgumentError
from gateway.api.graphql.money import Money, money
from gateway.api.graphql.partner_types import Partner
from gateway.api.graphql.payloads import IDEMPOTENCY_KEY, MemberReferenceInput, UserError
from gateway.api.graphql.scalars import Int64, decode_int_id, decode_member_id
from gateway.api.graphql.tiers import Tier, tier_named
from gateway.api.graphql.types import Transfer
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.rewards.catalogue import RewardDraft
from gateway.rewards.records import Receipt, RewardRecord
from gateway.rewards.records import RewardKind as DomainRewardKind

RewardKind = strawberry.enum(DomainRewardKind, description="What a reward gives.")
MAX_CATALOGUE = 200


@strawberry.type(description="A reward a partner offers, priced in its own points.")
class Reward(relay.Node):
    reward_id: relay.NodeID[int]
    record: strawberry.Private[RewardRecord]

    @classmethod
    def of(cls, record: RewardRecord) -> Reward:
        return cls(reward_id=record.id, record=record)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Reward | None]:
        ids = [int(i) if i.isdigit() and len(i) < 19 else 0 for i in node_ids]
        found = await info.context.rewards.rewards(ids)
        return [cls.of(found[i]) if i in found else None for i in ids]

    @strawberry.field
    def partner(self, info: Info) -> Partner:
        return Partner.of(info, self.record.partner)

    @strawberry.field
    def kind(self) -> RewardKind:  # type: ignore[valid-type]
        return self.record.kind

    @strawberry.field
    def name(self) -> str:
        return self.record.name

    @strawberry.field
    def description(self) -> str | None:
        return self.record.description

    @strawberry.field(description="The price in the partner's points.")
    def price_points(self) -> Int64:
        return self.record.price_points

    @strawberry.field(description="What the partner delivering it is owed for it.")
    def value(self, info: Info) -> Money:
        return money(info, self.record.value)

    @strawberry.field(description="For a donation: the charity it goes to.")
    def charity(self) -> str | None:
        return self.record.charity

    @strawberry.field
    def valid_from(self) -> datetime:
        return self.record.valid_from

    @strawberry.field
    def valid_until(self) -> datetime | None:
        return self.record.valid_until

    @strawberry.field(description="Units left; null for unlimited.")
    def stock(self) -> Int64 | None:
        return self.record.stock

    @strawberry.field
    def per_member_limit(self) -> Int64 | None:
        return self.record.per_member_limit

    @strawberry.field
    def active(self) -> bool:
        return self.record.active

    @strawberry.field(
        description="For a tier upgrade: the tier it gives for one window; null: the tier "
        "above the member's own."
    )
    def tier(self, info: Info) -> Tier | None:
        return tier_named(info, self.record.tier)

    @strawberry.field(
        description="Only members in this tier or above may redeem it (others get "
        "TIER_REQUIRED); the catalogue shows it to everyone. Null: open to all."
    )
    def min_tier(self, info: Info) -> Tier | None:
        return tier_named(info, self.record.min_tier)

    @strawberry.field(description="Whether it can be redeemed now (active, valid, in stock).")
    def available(self, info: Info) -> bool:
        return self.record.available_at(info.context.service.clock())

    @strawberry.field(
        description="What it costs now in another partner's points (a conversion at the "
        "rate in force, fee included); null when that pool cannot pay for it."
    )
    def cost_in(self, info: Info, partner: str) -> Int64 | None:
        try:
            return info.context.rewards.cost(self.record, partner, info.context.service.clock())
        except DomainError:
            return None


@strawberry.type(description="A member's receipt for a reward.")
class RewardReceipt:
    record: strawberry.Private[Receipt]

    @strawberry.field
    async def reward(self, info: Info) -> Reward | None:
        found = await info.context.rewards.rewards([self.record.reward_id])
        record = found.get(self.record.reward_id)
        return Reward.of(record) if record else None

    @strawberry.field(description="The partner whose points paid.")
    def paid_with(self, info: Info) -> Partner:
        return Partner.of(info, self.record.paid_with)

    @strawberry.field(description="Points of `paidWith` the member gave.")
    def paid_points(self) -> Int64:
        return self.record.paid_points

    @strawberry.field(description="The reward's price in its partner's points.")
    def price_points(self) -> Int64:
        return self.record.price_points

    @strawberry.field(description="The conversion rate used, when paid from another pool.")
    def rate(self) -> Decimal | None:
        return self.record.rate

    @strawberry.field
    async def conversion(self, info: Info) -> Transfer | None:
        if self.record.conversion_transfer_id is None:
            return None
        record = await info.context.loaders.transfers.load(self.record.conversion_transfer_id)
        return Transfer.of(record) if record else None

    @strawberry.field
    async def redemption(self, info: Info) -> Transfer | None:
        record = await info.context.loaders.transfers.load(self.record.redeem_transfer_id)
        return Transfer.of(record) if record else None

    @strawberry.field(description="For a gift card: its code.")
    def gift_code(self) -> str | None:
        return self.record.gift_code

    @strawberry.field(description="For a donation: the charity it was given to.")
    def charity(self) -> str | None:
        return self.record.charity

    @strawberry.field
    def created_at(self) -> datetime:
        return self.record.created_at


@strawberry.input
class RewardInput:
    kind: RewardKind | None = None  # type: ignore[valid-type]
    name: str | None = None
    description: str | None = None
    price_points: Int64 | None = None
    value: Decimal | None = strawberry.field(
        default=None, description="Its worth in the settlement currency."
    )
    charity: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    stock: Int64 | None = strawberry.field(default=None, description="Units; leave out: unlimited.")
    per_member_limit: Int64 | None = None
    active: bool | None = None
    tier: str | None = strawberry.field(
        default=None, description="A tier upgrade's tier (its slug); leave out: the next tier up."
    )
    min_tier: str | None = strawberry.field(
        default=None, description="The slug of the lowest tier that may redeem it."
    )

    def draft(self) -> RewardDraft:
        kind = self.kind.value if self.kind is not None else None
        return RewardDraft(
            kind=kind,
            name=self.name,
            description=self.description,
            price_points=self.price_points,
            value=self.value,
            charity=self.charity,
            valid_from=self.valid_from,
            valid_until=self.valid_until,
            stock=self.stock,
            per_member_limit=self.per_member_limit,
            active=self.active,
            tier=self.tier,
            min_tier=self.min_tier,
        )


@strawberry.input
class CreateRewardInput:
    partner: str
    reward: RewardInput


@strawberry.input
class UpdateRewardInput:
    reward_id: strawberry.ID
    reward: RewardInput = strawberry.field(description="Only the settings given change.")


@strawberry.type
class RewardPayload:
    reward: Reward | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RedeemRewardInput:
    reward_id: strawberry.ID
    member: MemberReferenceInput = strawberry.field(
        description="Who redeems (a customer id is the reward's partner's)."
    )
    pay_with: str = strawberry.field(
        description="The partner whose points pay; another partner's are converted at the "
        "rate in force, just enough for the price."
    )
    idempotency_key: str = strawberry.field(description=IDEMPOTENCY_KEY)


@strawberry.type
class RedeemRewardPayload:
    receipt: RewardReceipt | None = None
    idempotent_replay: bool = False
    user_errors: list[UserError] = strawberry.field(default_factory=list)


def _inside_reward(error: DomainError) -> DomainError:
    """A setting's error points into `input.reward`."""
    if not error.field or error.field[0] in ("partner", "reward_id"):
        return error
    return DomainError(error.code, error.message, ("reward", *error.field))


def _reward_id(value: strawberry.ID) -> int:
    reward_id = decode_int_id(str(value), "Reward")
    if reward_id is None:
        raise DomainError(ErrorCode.UNKNOWN_REWARD, "No such reward.", ("reward_id",))
    return reward_id


@strawberry.type
class RewardQueries:
    @strawberry.field(
        description="The rewards catalogue, cheapest first: by partner and kind, only those "
        "available now unless asked, and (with `affordableFor`) only those the member can "
        "redeem now and pay for from some pool: available, their `minTier` held, their "
        "`perMemberLimit` not used up, and a tier upgrade only when it would raise their tier."
    )
    async def rewards(
        self,
        info: Info,
        partner: str | None = None,
        kind: RewardKind | None = None,  # type: ignore[valid-type]
        affordable_for: strawberry.ID | None = None,
        include_unavailable: bool = False,
        first: int = 50,
    ) -> list[Reward]:
        if not 0 <= first <= MAX_CATALOGUE:
            raise ArgumentError(f"`first` must be between 0 and {MAX_CATALOGUE}.")
        wanted = kind.value if kind is not None else None
        limit = MAX_CATALOGUE if affordable_for is not None else first
        found = await info.context.rewards.catalogue(partner, wanted, include_unavailable, limit)
        if affordable_for is None:
            return [Reward.of(record) for record in found]
        member_id = decode_member_id(str(affordable_for))
        record = await info.context.loaders.members.load(member_id) if member_id else None
        if record is None or not await info.context.sees_member(record.id):
            raise ArgumentError("`affordableFor` is not a member you may see.")
        found = await info.context.rewards.redeemable(record.id, found)
        wallets = {w.pool: w.balance for w in await info.context.loaders.wallets.load(record.id)}
        now = info.context.service.clock()
        affordable = []
        for reward in found:
            for pool, balance in wallets.items():
                try:
                    if info.context.rewards.cost(reward, pool, now) <= balance:
                        affordable.append(reward)
                        break
                except DomainError:
                    continue
        return [Reward.of(record) for record in affordable[:first]]


@strawberry.type
class RewardMutations:
    @strawberry.mutation(description="A partner publishes a reward (its app needs rewards:manage).")
    async def create_reward(self, info: Info, input: CreateRewardInput) -> RewardPayload | None:
        try:
            info.context.access.act_at(input.partner, "rewards:manage")
            record = await info.context.rewards.create(input.partner, input.reward.draft())
        except DomainError as error:
            return RewardPayload(user_errors=UserError.of(_inside_reward(error)))
        return RewardPayload(reward=Reward.of(record))

    @strawberry.mutation(description="Change a reward's settings, or withdraw it (active: false).")
    async def update_reward(self, info: Info, input: UpdateRewardInput) -> RewardPayload | None:
        try:
            reward_id = _reward_id(input.reward_id)
            found = (await info.context.rewards.rewards([reward_id])).get(reward_id)
            if found is None:
                raise DomainError(ErrorCode.UNKNOWN_REWARD, "No such reward.", ("reward_id",))
            info.context.access.act_at(found.partner, "rewards:manage", ("reward_id",))
            record = await info.context.rewards.update(reward_id, input.reward.draft())
        except DomainError as error:
            return RewardPayload(user_errors=UserError.of(_inside_reward(error)))
        return RewardPayload(reward=Reward.of(record))

    @strawberry.mutation(
        description="Redeem a reward with points of any pool: another partner's points are "
        "converted at the rate in force, atomically with the redemption. Stock and the "
        "per-member limit hold under concurrent redemptions."
    )
    async def redeem_reward(
        self, info: Info, input: RedeemRewardInput
    ) -> RedeemRewardPayload | None:
        try:
            reward_id = _reward_id(input.reward_id)
            service, access = info.context.service, info.context.access
            reward = (await info.context.rewards.rewards([reward_id])).get(reward_id)
            if reward is None:
                raise DomainError(ErrorCode.UNKNOWN_REWARD, "No such reward.", ("reward_id",))
            if access.partner is not None:
                access.act_at(reward.partner, "points:redeem", ("reward_id",))
            member = input.member.resolve(reward.partner)
            member_id = await check_member(info, member)
            paying = service.partner(input.pay_with, "pay_with")
            # Paying from a pool is spending there: a partner's app only from its own pool,
            # a member with step-up, an operator freely.
            cost = info.context.rewards.cost(reward, paying.slug, service.clock())
            step_up = spending(info, paying, cost, member_id)
            receipt = await info.context.rewards.redeem(
                reward_id, member, paying.slug, input.idempotency_key, step_up
            )
        except DomainError as error:
            if error.field and error.field[0] in ("points", "to_partner", "from_partner"):
                error = DomainError(error.code, error.message, ("pay_with",))
            return RedeemRewardPayload(user_errors=UserError.of(error))
        return RedeemRewardPayload(
            receipt=RewardReceipt(record=receipt), idempotent_replay=receipt.replayed
        )
