"""The rewards catalogue and redeeming a reward with points of any pool.

A reward is priced in its partner's points. Paying from another pool converts just enough
points at the rate in force, in the same transaction as the redemption; the member keeps
any whole points the rounding gives beyond the price. Stock and the per-member limit are
conditional updates inside that transaction, so the last unit is sold once. A cross-brand
redemption records what the paying partner owes the delivering one.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.auth.step_up import StepUp
from gateway.events import outbox
from gateway.events.event import NewEvent
from gateway.kernel.errors import DomainError, ErrorCode, shown
from gateway.kernel.validation import check_amount, check_points, clean_text, invalid
from gateway.ledger import exchange
from gateway.ledger import store as repository
from gateway.ledger.records import MemberRef, Posting, scope
from gateway.ledger.rules import TransferKind, conversion_legs, redeem_legs
from gateway.ledger.service import LedgerService
from gateway.ledger.tables import obligations, reward_claims, reward_redemptions, rewards
from gateway.tiers.reward_rules import RewardTiers, check_reward_tiers, needs_tier, tier_refusal
from gateway.tiers.service import TierService, TierStatus
from partners.config.tiers import Tiers


def _error(code: ErrorCode, message: str, *fields: str) -> DomainError:
    return DomainError(code, message, fields or ("reward_id",))


class RewardKind(Enum):
    DISCOUNT = "discount"
    FREE_PRODUCT = "free_product"
    GIFT_CARD = "gift_card"  # a code is issued on redemption
    EXPERIENCE = "experience"  # usually with limited stock
    DONATION = "donation"  # the donation to the named charity is recorded
    TIER_UPGRADE = "tier_upgrade"  # its tier (or the next one up) for a window: see tiers.py


@dataclass(frozen=True)
class RewardRecord:
    id: int
    partner: str
    kind: RewardKind
    name: str
    description: str | None
    price_points: int
    value: Decimal
    charity: str | None
    valid_from: datetime
    valid_until: datetime | None
    stock: int | None
    per_member_limit: int | None
    active: bool
    tier: str | None = None  # a tier upgrade's tier (a slug); None: the next tier up
    min_tier: str | None = None  # only members of this tier or above may redeem it

    @classmethod
    def from_row(cls, row: Any) -> RewardRecord:
        return cls(
            row.id,
            row.partner,
            RewardKind(row.kind),
            row.name,
            row.description,
            row.price_points,
            Decimal(row.value),
            row.charity,
            row.valid_from,
            row.valid_until,
            row.stock,
            row.per_member_limit,
            row.active,
            row.tier,
            row.min_tier,
        )

    def available_at(self, moment: datetime) -> bool:
        if not self.active or moment < self.valid_from:
            return False
        if self.valid_until is not None and moment >= self.valid_until:
            return False
        return self.stock is None or self.stock > 0

    @property
    def tier_settings(self) -> RewardTiers:
        return RewardTiers(self.kind.value, self.tier, self.min_tier)


def refusal(
    reward: RewardRecord,
    moment: datetime,
    tiers: Tiers | None,
    status: TierStatus | None,
    claimed: int,
) -> DomainError | None:
    """Why a member cannot redeem ``reward`` at ``moment`` (None: they can, funds aside):
    withdrawn, outside its validity or out of stock; their tier (``status``, needed when
    ``needs_tier``); or its limit per member, of which they used ``claimed``. The one rule
    for redeeming and for what a member is offered."""
    if not reward.available_at(moment):
        if reward.stock == 0:
            return _error(ErrorCode.OUT_OF_STOCK, "This reward is out of stock.")
        return _error(ErrorCode.REWARD_UNAVAILABLE, "This reward is not available now.")
    refused = tier_refusal(tiers, status, reward.tier_settings)
    if refused is not None:
        return refused
    if reward.per_member_limit is not None and claimed >= reward.per_member_limit:
        return _limit_reached(reward)
    return None


def _limit_reached(reward: RewardRecord) -> DomainError:
    return _error(
        ErrorCode.REWARD_LIMIT_REACHED,
        f"This reward can be redeemed {reward.per_member_limit} time(s) per member.",
    )


async def claims(
    connection: AsyncConnection, member_id: str, found: Sequence[RewardRecord]
) -> dict[int, int]:
    """How many times the member redeemed each of ``found`` that has a limit per member,
    in one query."""
    limited = [reward.id for reward in found if reward.per_member_limit is not None]
    if not limited:
        return {}
    result = await connection.execute(
        sa.select(reward_claims.c.reward_id, reward_claims.c.count).where(
            reward_claims.c.member_id == member_id, reward_claims.c.reward_id.in_(limited)
        )
    )
    return {int(reward_id): int(count) for reward_id, count in result}


@dataclass(frozen=True)
class RewardDraft:
    """A reward's settings as a partner gives them; None leaves a setting as it is."""

    kind: str | None = None
    name: str | None = None
    description: str | None = None
    price_points: int | None = None
    value: Decimal | None = None
    charity: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    stock: int | None = None
    per_member_limit: int | None = None
    active: bool | None = None
    tier: str | None = None  # a tier upgrade's tier, by slug
    min_tier: str | None = None  # the lowest tier that may redeem it, by slug
    clear: frozenset[str] = field(default_factory=frozenset)  # settings to set to null


@dataclass(frozen=True)
class Receipt:
    """What a member paid for a reward, from which pool, at which rate."""

    id: int
    reward_id: int
    member_id: str
    partner: str
    paid_with: str
    price_points: int
    paid_points: int
    value: Decimal
    rate: Decimal | None
    conversion_transfer_id: int | None
    redeem_transfer_id: int
    gift_code: str | None
    charity: str | None
    created_at: datetime
    replayed: bool = False

    @classmethod
    def from_row(cls, row: Any, replayed: bool = False) -> Receipt:
        return cls(
            row.id,
            row.reward_id,
            row.member_id,
            row.partner,
            row.paid_with,
            row.price_points,
            row.paid_points,
            Decimal(row.value),
            Decimal(row.rate) if row.rate else None,
            row.conversion_transfer_id,
            row.redeem_transfer_id,
            row.gift_code,
            row.charity,
            row.created_at,
            replayed,
        )


class RewardService:
    def __init__(self, ledger: LedgerService) -> None:
        self.ledger = ledger
        self.uow = ledger.uow
        self.tiers = TierService(ledger)

    # Managing the catalogue

    def _values(self, draft: RewardDraft, creating: bool) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if draft.kind is not None:
            try:
                values["kind"] = RewardKind(draft.kind).value
            except ValueError:
                raise invalid("kind", f"No reward kind {shown(draft.kind)}.") from None
        if draft.name is not None:
            values["name"] = clean_text(draft.name, "name", 120, True)
        if draft.description is not None:
            values["description"] = clean_text(draft.description, "description", 1000, False)
        if draft.price_points is not None:
            check_points(draft.price_points, "price_points")
            values["price_points"] = draft.price_points
        if draft.value is not None:
            values["value"] = str(check_amount(draft.value, "value"))
        if draft.charity is not None:
            values["charity"] = clean_text(draft.charity, "charity", 120, True)
        for name in ("valid_from", "valid_until"):
            moment = getattr(draft, name)
            if moment is not None:
                values[name] = moment
        if draft.stock is not None:
            if draft.stock < 0 or draft.stock > 10**9:
                raise invalid("stock", "Stock is between 0 and 1,000,000,000.")
            values["stock"] = draft.stock
        if draft.per_member_limit is not None:
            if not 1 <= draft.per_member_limit <= 10**6:
                raise invalid("per_member_limit", "A limit per member is at least 1.")
            values["per_member_limit"] = draft.per_member_limit
        if draft.active is not None:
            values["active"] = draft.active
        for name in ("tier", "min_tier"):  # tier slugs, checked in _check_whole
            if getattr(draft, name) is not None or name in draft.clear:
                values[name] = getattr(draft, name)
        for name in draft.clear & {"description", "valid_until", "stock", "per_member_limit"}:
            values[name] = None
        if creating:
            for name in ("kind", "name", "price_points", "value"):
                if name not in values:
                    raise invalid(name, f"A new reward needs {name}.")
        return values

    def _check_whole(self, reward: dict[str, Any]) -> None:
        if reward["kind"] == RewardKind.DONATION.value and not reward.get("charity"):
            raise invalid("charity", "A donation names the charity it goes to.")
        until = reward.get("valid_until")
        if until is not None and until <= reward["valid_from"]:
            raise invalid("valid_until", "A reward's validity must end after it starts.")
        check_reward_tiers(self.ledger.coalition.tiers, reward)

    async def create(self, partner: str, draft: RewardDraft) -> RewardRecord:
        self.ledger.partner(partner)
        values = self._values(draft, creating=True)
        now = self.ledger.clock()
        values = {
            "valid_from": now,
            "active": True,
            **values,
            "partner": partner,
            "created_at": now,
            "updated_at": now,
        }
        self._check_whole(values)

        async def work(connection: AsyncConnection) -> RewardRecord:
            statement = sa.insert(rewards).values(**values).returning(*rewards.c)
            return RewardRecord.from_row((await connection.execute(statement)).one())

        return await self.uow.write(work)

    async def update(self, reward_id: int, draft: RewardDraft) -> RewardRecord:
        values = self._values(draft, creating=False)

        async def work(connection: AsyncConnection) -> RewardRecord:
            current = await self._reward(connection, reward_id, lock=True)
            whole = {
                "kind": current.kind.value,
                "charity": current.charity,
                "valid_from": current.valid_from,
                "valid_until": current.valid_until,
                "tier": current.tier,
                "min_tier": current.min_tier,
                **values,
            }
            self._check_whole(whole)
            statement = (
                sa.update(rewards)
                .where(rewards.c.id == reward_id)
                .values(**values, updated_at=self.ledger.clock())
                .returning(*rewards.c)
            )
            return RewardRecord.from_row((await connection.execute(statement)).one())

        return await self.uow.write(work)

    async def _reward(
        self, connection: AsyncConnection, reward_id: int, lock: bool = False
    ) -> RewardRecord:
        query = sa.select(rewards).where(rewards.c.id == reward_id)
        if lock:
            query = query.with_for_update()
        row = (await connection.execute(query)).first()
        if row is None:
            raise _error(ErrorCode.UNKNOWN_REWARD, "No such reward.")
        return RewardRecord.from_row(row)

    # Reading

    async def rewards(self, reward_ids: Sequence[int]) -> dict[int, RewardRecord]:
        async def work(connection: AsyncConnection) -> dict[int, RewardRecord]:
            result = await connection.execute(
                sa.select(rewards).where(rewards.c.id.in_(reward_ids))
            )
            return {row.id: RewardRecord.from_row(row) for row in result}

        return await self.uow.read(work)

    async def catalogue(
        self, partner: str | None, kind: str | None, include_unavailable: bool, limit: int
    ) -> list[RewardRecord]:
        now = self.ledger.clock()

        async def work(connection: AsyncConnection) -> list[RewardRecord]:
            query = sa.select(rewards)
            if partner is not None:
                query = query.where(rewards.c.partner == partner)
            if kind is not None:
                query = query.where(rewards.c.kind == kind)
            result = await connection.execute(query.order_by(rewards.c.price_points, rewards.c.id))
            found = [RewardRecord.from_row(row) for row in result]
            if not include_unavailable:
                found = [reward for reward in found if reward.available_at(now)]
            return found[:limit]

        return await self.uow.read(work)

    def payer(self, pay_with: str) -> None:
        """Refuse a pool that cannot pay for rewards: an unknown partner, or one that keeps
        its points in its own system."""
        self.ledger.partner(pay_with, "pay_with")
        if self.ledger.coalition.is_remote(pay_with):
            raise DomainError(
                ErrorCode.NOT_AVAILABLE_AT_REMOTE_POOL,
                f"'{pay_with}' keeps its points in its own system: rewards cannot be paid "
                "with them through the gateway yet. Pay with another pool.",
                ("pay_with",),
            )

    async def redeemable(
        self, member_id: str, catalogue: Sequence[RewardRecord]
    ) -> list[RewardRecord]:
        """``catalogue`` less the rewards the member cannot redeem now (``refusal``): the
        member's tier and their uses of limited rewards are read once for the whole list."""
        now = self.ledger.clock()
        tiers = self.ledger.coalition.tiers
        status = None
        if any(needs_tier(tiers, reward.tier_settings) for reward in catalogue):
            status = await self.tiers.status(member_id)

        async def work(connection: AsyncConnection) -> dict[int, int]:
            found = await repository.members_by_id(connection, [member_id])
            survivor = found[member_id].id if member_id in found else member_id
            return await claims(connection, survivor, catalogue)

        used = await self.uow.read(work)
        return [
            reward
            for reward in catalogue
            if refusal(reward, now, tiers, status, used.get(reward.id, 0)) is None
        ]

    def cost(self, reward: RewardRecord, pay_with: str, at: datetime) -> int:
        """Points of ``pay_with`` the reward costs now (the price, or a conversion);
        a DomainError when that pool cannot pay for it."""
        self.payer(pay_with)
        if pay_with == reward.partner:
            return reward.price_points
        return exchange.quote_to_receive(
            self.ledger.coalition, pay_with, reward.partner, reward.price_points, at
        ).points

    async def receipts(self, member_id: str, limit: int) -> list[Receipt]:
        async def work(connection: AsyncConnection) -> list[Receipt]:
            result = await connection.execute(
                sa.select(reward_redemptions)
                .where(reward_redemptions.c.member_id == member_id)
                .order_by(reward_redemptions.c.id.desc())
                .limit(limit)
            )
            return [Receipt.from_row(row) for row in result]

        return await self.uow.read(work)

    # Redeeming

    async def redeem(
        self,
        reward_id: int,
        member: MemberRef,
        pay_with: str,
        idempotency_key: str,
        step_up: StepUp | None = None,
    ) -> Receipt:
        """``step_up``: checked under the member's lock, in the redemption's transaction."""
        ledger = self.ledger
        self.payer(pay_with)
        remote = ledger.coalition.is_remote
        request = {"reward": reward_id, "member": member.canonical(), "pay_with": pay_with}

        async def work(connection: AsyncConnection) -> Receipt:
            member_id = await ledger.kernel.lock_member(connection, member)
            claim = ledger.kernel.claim(scope("reward", member_id), idempotency_key, request)
            replay = await ledger.kernel.replay(connection, claim)
            if replay is not None:
                return await self._receipt_of(connection, replay.transfer.id, replayed=True)
            reward = await self._reward(connection, reward_id)
            now = ledger.clock()
            if step_up is not None:
                await step_up.check(connection, member_id, now)
            # The rule the catalogue offers by; the tier is stored and an upgrade given in
            # this transaction, so both stand or fall with the payment. The stock and the
            # limit are taken again below, conditionally, against racing redemptions.
            status = await self.tiers.redeemed(connection, member_id, reward.tier_settings, now)
            used = (await claims(connection, member_id, [reward])).get(reward.id, 0)
            refused = refusal(reward, now, ledger.coalition.tiers, status, used)
            if refused is not None:
                raise refused
            await self.tiers.bought(connection, member_id, reward.tier_settings, status, now)
            conversion: Posting | None = None
            rate: Decimal | None = None
            paid = reward.price_points
            if pay_with != reward.partner:
                quote = exchange.quote_to_receive(
                    ledger.coalition, pay_with, reward.partner, reward.price_points, now
                )
                conversion = await ledger.kernel.post(
                    connection,
                    ledger.kernel.claim(
                        scope("reward", member_id), conversion_key(claim.key), request
                    ),
                    {
                        "kind": TransferKind.CONVERSION.value,
                        "partner": pay_with,
                        "to_partner": reward.partner,
                        "points": quote.points,
                        "received_points": quote.received,
                        "rate": str(quote.rate),
                        "fee": quote.fee,
                        "reason": f"for the reward {reward.name}",
                    },
                    member_id,
                    # A remote partner's points pass through its REMOTE account: they are
                    # spent on the spot and never reach the partner's own ledger.
                    conversion_legs(quote, target_remote=remote(reward.partner)),
                )
                rate, paid = quote.rate, quote.points

            async def take_unit(connection: AsyncConnection, transfer_id: int) -> None:
                await self._take_unit(connection, reward, member_id)

            redemption = await ledger.kernel.post(
                connection,
                claim,
                {
                    "kind": TransferKind.REDEEM.value,
                    "partner": reward.partner,
                    "points": reward.price_points,
                    "reason": f"reward: {reward.name}",
                },
                member_id,
                redeem_legs(reward.partner, reward.price_points, remote(reward.partner)),
                take_unit,
            )
            if redemption.replayed:  # a racing retry committed first
                return await self._receipt_of(connection, redemption.transfer.id, replayed=True)
            values = {
                "reward_id": reward.id,
                "member_id": member_id,
                "partner": reward.partner,
                "paid_with": pay_with,
                "price_points": reward.price_points,
                "paid_points": paid,
                "value": str(reward.value),
                "rate": str(rate) if rate is not None else None,
                "conversion_transfer_id": conversion.transfer.id if conversion else None,
                "redeem_transfer_id": redemption.transfer.id,
                "gift_code": _gift_code() if reward.kind is RewardKind.GIFT_CARD else None,
                "charity": reward.charity if reward.kind is RewardKind.DONATION else None,
                "created_at": now,
            }
            row = (
                await connection.execute(
                    sa.insert(reward_redemptions).values(**values).returning(*reward_redemptions.c)
                )
            ).one()
            if conversion is not None:
                await self._owe(connection, reward, pay_with, conversion, row.id, now)
            await outbox.append(connection, [_redeemed_event(row)])
            return Receipt.from_row(row)

        return await self.uow.write(work)

    async def _take_unit(
        self, connection: AsyncConnection, reward: RewardRecord, member_id: str
    ) -> None:
        """One unit of stock and one use of the member's limit, or refuse: both are
        conditional updates, so concurrent redemptions never sell more than there is."""
        if reward.stock is not None:
            result = await connection.execute(
                sa.update(rewards)
                .where(rewards.c.id == reward.id, rewards.c.stock > 0)
                .values(stock=rewards.c.stock - 1)
            )
            if not result.rowcount:
                raise _error(ErrorCode.OUT_OF_STOCK, "This reward is out of stock.")
        if reward.per_member_limit is not None:
            insert = (
                postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
            )(reward_claims)
            statement = (
                insert.values(reward_id=reward.id, member_id=member_id, count=1)
                .on_conflict_do_update(
                    index_elements=["reward_id", "member_id"],
                    set_={"count": reward_claims.c.count + 1},
                    where=reward_claims.c.count < reward.per_member_limit,
                )
                .returning(reward_claims.c.count)
            )
            if (await connection.execute(statement)).first() is None:
                raise _limit_reached(reward)

    async def _owe(
        self,
        connection: AsyncConnection,
        reward: RewardRecord,
        pay_with: str,
        conversion: Posting,
        redemption_id: int,
        now: datetime,
    ) -> None:
        """The paying partner owes the delivering one the reward's value, plus the worth of
        any points the conversion gave beyond the price (they stay in the member's wallet)."""
        rows = [
            {
                "kind": "reward",
                "debtor": pay_with,
                "creditor": reward.partner,
                "amount": str(reward.value),
                "transfer_id": conversion.transfer.id,
                "redemption_id": redemption_id,
                "created_at": now,
            }
        ]
        surplus = (conversion.transfer.received_points or 0) - reward.price_points
        if surplus > 0:
            point_value = self.ledger.coalition.partners[reward.partner].point_value
            rows.append(
                {
                    "kind": "conversion",
                    "debtor": pay_with,
                    "creditor": reward.partner,
                    "amount": str(point_value * surplus),
                    "transfer_id": conversion.transfer.id,
                    "redemption_id": redemption_id,
                    "created_at": now,
                }
            )
        await connection.execute(sa.insert(obligations), rows)

    async def _receipt_of(
        self, connection: AsyncConnection, transfer_id: int, replayed: bool
    ) -> Receipt:
        row = (
            await connection.execute(
                sa.select(reward_redemptions).where(
                    reward_redemptions.c.redeem_transfer_id == transfer_id
                )
            )
        ).one()
        return Receipt.from_row(row, replayed=replayed)


def conversion_key(key: str) -> str:
    """The key of a redemption's conversion step: derived, and short whatever the caller's."""
    return "conversion:" + hashlib.sha256(key.encode()).hexdigest()


def _gift_code() -> str:
    """A gift card code: 16 characters from an alphabet without look-alikes."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    code = "".join(secrets.choice(alphabet) for _ in range(16))
    return "-".join(code[i : i + 4] for i in range(0, 16, 4))


def _redeemed_event(row: Any) -> NewEvent:
    """A receipt's event (without the gift code: events are read widely)."""
    data = {
        "redemption_id": row.id,
        "reward_id": row.reward_id,
        "paid_with": row.paid_with,
        "paid_points": row.paid_points,
        "value": row.value,
        "conversion_transfer_id": row.conversion_transfer_id,
    }
    return outbox.reward_redeemed(
        row.member_id, row.partner, row.redeem_transfer_id, row.price_points, row.created_at, data
    )
