"""Gifting: a member gives points to another member in the same pool, within the partner's
``[gifting]`` limits (see ``partners/expiry.py``).

A gift is one GIFT transfer with two wallet legs in the partner's pool: the giver's wallet
-n, the receiver's +n. Its transfer's member is the giver. A partner without a ``[gifting]``
table offers no gifting, and a pool kept in the partner's own system has no wallets here.

The monthly limit per giver holds under concurrent gifts: the giver's and the receiver's
member rows are locked (``locks.lock_members``: in the one order every transaction
takes member locks in, so that two members gifting each other cannot deadlock) before the
month's gifts are summed, so two gifts of one giver are checked one after the other. Every
posting for a member takes that lock too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.auth.step_up import StepUp
from gateway.kernel.errors import DomainError, ErrorCode, shown
from gateway.kernel.validation import MAX_REASON_LENGTH, check_points, clean_text
from gateway.ledger import locks
from gateway.ledger import store as repository
from gateway.ledger.records import MemberRef, Posting, scope
from gateway.ledger.rules import AccountCode, Leg, TransferKind
from gateway.ledger.service import LedgerService
from partners.config.expiry import GiftingLimits

GIFTS = (TransferKind.GIFT,)


def month_start(moment: datetime) -> datetime:
    """The start of ``moment``'s calendar month in UTC: the monthly limit's period."""
    utc = moment.astimezone(UTC)
    return datetime(utc.year, utc.month, 1, tzinfo=UTC)


def gift_legs(pool: str, giver: str, receiver: str, points: int) -> list[Leg]:
    return [
        Leg(pool, AccountCode.WALLET, -points, giver),
        Leg(pool, AccountCode.WALLET, points, receiver),
    ]


class GiftService:
    def __init__(self, ledger: LedgerService) -> None:
        self.ledger = ledger
        self.uow = ledger.uow

    def limits(self, partner: str, field: str = "partner") -> GiftingLimits:
        """The partner's limits; refuses a remote pool and a partner that offers no gifting."""
        config = self.ledger.partner(partner, field)
        if config.pool.remote:
            raise DomainError(
                ErrorCode.NOT_AVAILABLE_AT_REMOTE_POOL,
                f"'{partner}' keeps its points in its own system: gift them there.",
                (field,),
            )
        if config.gifting is None:
            raise DomainError(
                ErrorCode.GIFT_LIMIT_EXCEEDED,
                f"'{partner}' does not let members gift points (its limit is zero).",
                (field,),
            )
        return config.gifting

    def check(self, partner: str, points: int) -> GiftingLimits:
        """What a gift of ``points`` at ``partner`` is refused for before any member is
        looked at: no gifting there, or outside the per-gift limits. The limits."""
        limits = self.limits(partner)
        check_points(points)
        if points < limits.min_points:
            raise DomainError(
                ErrorCode.AMOUNT_TOO_SMALL,
                f"A gift at '{partner}' is at least {limits.min_points} points.",
                ("points",),
            )
        if points > limits.max_points_per_gift:
            raise DomainError(
                ErrorCode.GIFT_LIMIT_EXCEEDED,
                f"A gift at '{partner}' is at most {limits.max_points_per_gift} points.",
                ("points",),
            )
        return limits

    async def gift(
        self,
        partner: str,
        giver_member_id: str,
        receiver: MemberRef,
        points: int,
        idempotency_key: str,
        message: str | None = None,
        caller: str | None = None,
        step_up: StepUp | None = None,
    ) -> Posting:
        """Move ``points`` from the giver's wallet at ``partner`` to the receiver's.

        ``receiver``: by member id, or by ``partner``'s own customer id. ``caller``: set when
        a member gifts themself, so that their keys live apart from the partner's.
        ``step_up``: checked under the giver's lock, in the gift's transaction."""
        limits = self.check(partner, points)
        message = clean_text(message, "message", MAX_REASON_LENGTH, False)
        request = {
            "giver": giver_member_id,
            "receiver": receiver.canonical(),
            "points": points,
            "message": message,
        }
        ledger = self.ledger
        claim = ledger.kernel.claim(scope("gift", partner, caller), idempotency_key, request)

        async def work(connection: AsyncConnection) -> Posting:
            receiver_id = await _receiver(ledger, connection, receiver)
            live = await locks.lock_members(connection, [giver_member_id, receiver_id])
            giver = live.get(giver_member_id)
            if giver is None:
                raise DomainError(ErrorCode.UNKNOWN_MEMBER, "No such member.", ("giver", "id"))
            receiving = live.get(receiver_id)
            if receiving is None:
                raise DomainError(ErrorCode.UNKNOWN_MEMBER, "No such member.", ("receiver", "id"))
            locks.check_not_erased(connection, giver, ("giver", "id"))
            locks.check_not_erased(connection, receiving, ("receiver", "id"))
            # After the lock: a retry racing the first call finds its posting here.
            replay = await ledger.kernel.replay(connection, claim)
            if replay is not None:
                return replay
            if giver == receiving:
                raise DomainError(
                    ErrorCode.SAME_MEMBER, "A member cannot gift points to themself.", ("receiver",)
                )
            now = ledger.clock()
            if step_up is not None:
                await step_up.check(connection, giver, now)
            since = month_start(now)
            ids = [giver, *await repository.merged_into(connection, giver)]
            given = await repository.spent_since(connection, ids, partner, since, (), GIFTS)
            if given + points > limits.max_points_per_month:
                left = max(0, limits.max_points_per_month - given)
                raise DomainError(
                    ErrorCode.GIFT_LIMIT_EXCEEDED,
                    f"Gifts at '{partner}' are limited to {limits.max_points_per_month} points "
                    f"per member and month; {given} were given since "
                    f"{since.date().isoformat()}, so at most {left} more this month.",
                    ("points",),
                )
            values = {
                "kind": TransferKind.GIFT.value,
                "partner": partner,
                "points": points,
                "reason": message,
            }
            legs = gift_legs(partner, giver, receiving, points)
            return await ledger.kernel.post(connection, claim, values, giver, legs)

        return await self.uow.write(work)

    async def given_since(
        self,
        member_id: str,
        pool: str,
        since: datetime,
        retry_of: Sequence[tuple[str, str]] = (),
    ) -> int:
        """Points the member (with those merged into it) gifted out of ``pool`` since
        ``since``, leaving out the transfers of ``retry_of`` (scopes and keys)."""

        async def work(connection: AsyncConnection) -> int:
            ids = [member_id, *await repository.merged_into(connection, member_id)]
            return await repository.spent_since(connection, ids, pool, since, retry_of, GIFTS)

        return await self.uow.read(work)

    async def given_this_month(self, member_id: str, pool: str) -> int:
        return await self.given_since(member_id, pool, month_start(self.ledger.clock()))


async def _receiver(ledger: LedgerService, connection: AsyncConnection, ref: MemberRef) -> str:
    """The receiver's member id (errors point at ``receiver``)."""
    try:
        return await ledger.kernel.resolve(connection, ref)
    except DomainError as error:
        field = ("receiver", *error.field[1:]) if error.field else ("receiver",)
        if error.code is ErrorCode.UNKNOWN_MEMBER and ref.customer_id is not None:
            message = f"No member is enrolled at '{ref.partner}' as {shown(ref.customer_id)}."
            raise DomainError(error.code, message, field) from None
        raise DomainError(error.code, error.message, field) from None
