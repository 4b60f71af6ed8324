"""Redeeming a reward, paid with points of any pool (converted in the same transaction)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.auth.step_up import StepUp
from gateway.events import outbox
from gateway.events.event import NewEvent
from gateway.kernel.errors import ErrorCode
from gateway.ledger import exchange
from gateway.ledger.records import MemberRef, Posting, scope
from gateway.ledger.rules import TransferKind, conversion_legs, redeem_legs
from gateway.ledger.tables import obligations
from gateway.rewards.catalogue import Catalogue
from gateway.rewards.records import (
    Receipt,
    RewardKind,
    RewardRecord,
    claims,
    limit_reached,
    refusal,
    reward_error,
)
from gateway.rewards.tables import reward_claims, reward_redemptions, rewards


class Redemption(Catalogue):
    """The redeeming part of the reward service."""

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
                raise reward_error(ErrorCode.OUT_OF_STOCK, "This reward is out of stock.")
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
                raise limit_reached(reward)

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
