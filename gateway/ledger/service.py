"""The ledger's operations: enrol, earn, redeem, convert, reverse, merge; each call is one
unit of work, its postings through the kernel (posting.py), its reads in reads.py."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.kernel.errors import DomainError, ErrorCode, shown
from gateway.kernel.unit_of_work import UnitOfWork
from gateway.kernel.validation import (
    MAX_CUSTOMER_ID_LENGTH,
    MAX_REASON_LENGTH,
    check_amount,
    check_points,
    clean_id,
    clean_text,
    invalid,
)
from gateway.ledger import enrolment, exchange, locks, merging, reversals
from gateway.ledger import store as repository
from gateway.ledger.observers import PostingObserver
from gateway.ledger.ports import NoRemotePools, RemotePostings, SpendingCheck
from gateway.ledger.posting import Claim, Kernel
from gateway.ledger.reads import LedgerReads
from gateway.ledger.records import (
    Draft,
    Enrolled,
    MemberRef,
    Posting,
    TransferRecord,
    scope,
)
from gateway.ledger.rules import (
    TransferKind,
    conversion_legs,
    earn_legs,
    redeem_legs,
)
from partners.config.coalition import Coalition, Partner


def utcnow() -> datetime:
    return datetime.now(UTC)


class LedgerService(LedgerReads):
    def __init__(
        self,
        engine: AsyncEngine,
        coalition: Coalition,
        clock: Callable[[], datetime] = utcnow,
        observers: Sequence[PostingObserver] = (),
    ) -> None:
        self.engine = engine
        self.coalition = coalition
        self.clock = clock
        self.uow = UnitOfWork(engine)
        # The posting steps every feature shares (see posting.py).
        self.kernel = Kernel(clock, observers)
        # Plugged in by the composition root: gateway.remote.connect_pools.
        self.remote: RemotePostings = NoRemotePools()

    async def start(self) -> None:
        """Create every pool's system accounts (once) and remember their ids."""
        await self._open_pools(self.coalition)

    async def reconfigure(self, coalition: Coalition) -> None:
        """Run with ``coalition`` from now on (a configuration change): a new partner's
        pool gets its system accounts first."""
        if coalition.partners.keys() - self.coalition.partners.keys():
            await self._open_pools(coalition)
        self.coalition = coalition

    async def _open_pools(self, coalition: Coalition) -> None:
        self.kernel.system_accounts = await self.uow.write(
            lambda connection: repository.ensure_system_accounts(connection, coalition.partners)
        )

    @property
    def observers(self) -> list[PostingObserver]:
        """Called in every posting's transaction (tiers, challenge counters): observers.py."""
        return self.kernel.observers

    # Configuration

    def partner(self, slug: str, field: str = "partner") -> Partner:
        partner = self.coalition.partner(slug)
        if partner is None:
            raise DomainError(ErrorCode.UNKNOWN_PARTNER, f"No partner {shown(slug)}.", (field,))
        return partner

    # Members

    async def enrol(self, partner: str, customer_id: str) -> Enrolled:
        self.partner(partner)
        cleaned = clean_id(customer_id, "partner_customer_id", MAX_CUSTOMER_ID_LENGTH)
        if self.coalition.is_remote(partner):
            # A partner keeping its own points is asked whether the customer exists (outside
            # any transaction); an enrolment already made is answered without asking.
            known = await self.uow.read(lambda c: repository.enrolment(c, partner, cleaned))
            if known is None:
                await self.remote.check_customer(partner, cleaned)

        async def work(connection: AsyncConnection) -> Enrolled:
            return await enrolment.enrol(connection, self.kernel, self.coalition, partner, cleaned)

        try:
            return await self.uow.write(work)
        except enrolment.EnrolmentTaken:
            return await self.uow.write(work)

    async def resolve_member(self, ref: MemberRef) -> str:
        return await self.uow.read(lambda connection: self.kernel.resolve(connection, ref))

    # Moving points

    async def earn(
        self,
        partner: str,
        member: MemberRef,
        idempotency_key: str,
        points: int | None = None,
        purchase_amount: Decimal | None = None,
        reason: str | None = None,
    ) -> Posting:
        config = self.partner(partner)
        reason = clean_text(reason, "reason", MAX_REASON_LENGTH, False)
        if (points is None) == (purchase_amount is None):
            raise invalid("points", "Give either points or purchaseAmount, not both or neither.")
        if purchase_amount is not None:
            purchase_amount = check_amount(purchase_amount, "purchase_amount")
            points = config.earn.points_for(purchase_amount)
            if points < 1:
                raise DomainError(
                    ErrorCode.AMOUNT_TOO_SMALL,
                    f"A purchase of {purchase_amount} earns no whole point at '{partner}'.",
                    ("purchase_amount",),
                )
        assert points is not None
        check_points(points)
        request = {
            "member": member.canonical(),
            "points": None if purchase_amount is not None else points,
            "purchase_amount": purchase_amount,
            "reason": reason,
        }
        claim = self.kernel.claim(f"earn:{partner}", idempotency_key, request)
        if config.pool.remote:
            draft = Draft(
                TransferKind.EARN,
                claim,
                partner,
                points,
                purchase_amount=purchase_amount,
                reason=reason,
            )
            return await self.remote.run(draft, member)

        async def work(connection: AsyncConnection) -> Posting:
            # No read of the key first: the transfer insert claims it, and a taken key
            # answers with the first posting.
            member_id = await self.kernel.lock_member(connection, member)
            values = {
                "kind": TransferKind.EARN.value,
                "partner": partner,
                "points": points,
                "purchase_amount": str(purchase_amount) if purchase_amount is not None else None,
                "reason": reason,
            }
            legs = earn_legs(partner, points)
            return await self.kernel.post(connection, claim, values, member_id, legs)

        return await self.uow.write(work)

    async def redeem(
        self,
        partner: str,
        member: MemberRef,
        points: int,
        idempotency_key: str,
        reason: str | None = None,
        caller: str | None = None,
        step_up: SpendingCheck | None = None,
    ) -> Posting:
        """``caller``: set when a member redeems themself, so that their keys live apart
        from the partner's till numbers (they can neither take nor probe those).
        ``step_up``: checked under the member's lock, in this transaction."""
        self.partner(partner)
        reason = clean_text(reason, "reason", MAX_REASON_LENGTH, False)
        check_points(points)
        request = {"member": member.canonical(), "points": points, "reason": reason}
        claim = self.kernel.claim(scope("redeem", partner, caller), idempotency_key, request)
        if self.coalition.is_remote(partner):
            await self._step_up_before(member, step_up)
            draft = Draft(TransferKind.REDEEM, claim, partner, points, reason=reason)
            return await self.remote.run(draft, member)

        async def work(connection: AsyncConnection) -> Posting:
            member_id = await self.kernel.lock_member(connection, member)
            values = {
                "kind": TransferKind.REDEEM.value,
                "partner": partner,
                "points": points,
                "reason": reason,
            }
            guard = step_up.guard(member_id, self.clock(), claim) if step_up else None
            legs = redeem_legs(partner, points)
            return await self.kernel.post(connection, claim, values, member_id, legs, guard)

        return await self.uow.write(work)

    async def _step_up_before(self, member: MemberRef, step_up: SpendingCheck | None) -> None:
        """A remote pool's posting runs as a saga, not in one transaction: its step-up is
        checked before it starts (two such spends racing may both pass)."""
        if step_up is None:
            return

        async def work(connection: AsyncConnection) -> None:
            member_id = await self.kernel.resolve(connection, member)
            await step_up.check(connection, member_id, self.clock())

        await self.uow.read(work)

    async def quote(
        self, member_id: str, source: str, target: str, points: int
    ) -> tuple[exchange.Quote, int]:
        """What converting would give now, and the member's balance at the source."""
        quote = exchange.quote(self.coalition, source, target, points, self.clock())

        async def work(connection: AsyncConnection) -> str:
            return await self.kernel.resolve(connection, MemberRef(id=member_id))

        owner = await self.uow.read(work)
        if self.coalition.is_remote(source):
            return quote, await self.remote.balance(owner, source) or 0
        balance = await self.uow.read(lambda c: repository.wallet_balance(c, owner, source))
        return quote, balance

    async def convert(
        self,
        member_id: str,
        source: str,
        target: str,
        points: int,
        idempotency_key: str,
        step_up: SpendingCheck | None = None,
    ) -> Posting:
        request = {"member": member_id, "from": source, "to": target, "points": points}
        claim = self.kernel.claim(scope("convert", member_id), idempotency_key, request)
        if self.coalition.is_remote(source) or self.coalition.is_remote(target):
            await self._step_up_before(MemberRef(id=member_id), step_up)
            quote = exchange.quote(self.coalition, source, target, points, self.clock())
            draft = Draft(
                TransferKind.CONVERSION, claim, source, points, to_partner=target, quote=quote
            )
            return await self.remote.run(draft, MemberRef(id=member_id))

        async def work(connection: AsyncConnection) -> Posting:
            replay = await self.kernel.replay(connection, claim)
            if replay is not None:
                return replay
            quote = exchange.quote(self.coalition, source, target, points, self.clock())
            owner = await self.kernel.lock_member(connection, MemberRef(id=member_id))
            values = {
                "kind": TransferKind.CONVERSION.value,
                "partner": source,
                "to_partner": target,
                "points": points,
                "received_points": quote.received,
                "rate": str(quote.rate),
                "fee": quote.fee,
            }
            guard = step_up.guard(owner, self.clock(), claim) if step_up else None
            legs = conversion_legs(quote)
            posting = await self.kernel.post(connection, claim, values, owner, legs, guard)
            if not posting.replayed:
                await self.owe_for_conversion(connection, posting.transfer, source, target)
            return posting

        return await self.uow.write(work)

    async def reverse(
        self,
        transfer_id: int,
        idempotency_key: str,
        points: int | None = None,
        reason: str | None = None,
    ) -> Posting:
        """Reverse ``points`` of a transfer (all that is left of it when None): reversals
        of one transfer add up to it, each with its own key."""
        reason = clean_text(reason, "reason", MAX_REASON_LENGTH, False)
        if points is not None:
            check_points(points)
        request = {"transfer": transfer_id, "points": points, "reason": reason}

        async def work(connection: AsyncConnection) -> Posting:
            # Locked first: a racing retry of this call waits here, then finds the key the
            # first one committed and answers with its posting, writing nothing.
            original = await reversals.original(connection, transfer_id)
            if original is None:
                raise DomainError(ErrorCode.UNKNOWN_TRANSFER, "No such transfer.", ("transfer_id",))
            claim = self.kernel.claim(f"reverse:{original.partner}", idempotency_key, request)
            replay = await self.kernel.replay(connection, claim)
            if replay is not None:
                return replay
            for pool in (original.partner, original.to_partner):
                if pool is not None and self.coalition.is_remote(pool):
                    raise DomainError(
                        ErrorCode.NOT_AVAILABLE_AT_REMOTE_POOL,
                        f"This transfer moved points in the own system of '{pool}': the "
                        "gateway cannot take them back there; correct it with the partner.",
                        ("transfer_id",),
                    )
            owner = original.member_id
            if owner is not None:  # an erased member's transfers stay as they are
                live = await locks.live_member(connection, owner)
                if live is not None:
                    locks.check_not_erased(connection, live, ("transfer_id",))
            return await self._reverse(connection, original, claim, points, reason)

        return await self.uow.write(work)

    async def compensate(
        self, connection: AsyncConnection, transfer_id: int, key: str, reason: str
    ) -> Posting:
        """Within a saga's transaction: reverse its local step in full, once per ``key``."""
        original = await reversals.original(connection, transfer_id)
        assert original is not None
        claim = self.kernel.claim("compensate", key, {"transfer": transfer_id})
        replay = await self.kernel.replay(connection, claim)
        if replay is not None:
            return replay
        return await self._reverse(connection, original, claim, None, reason)

    async def _reverse(
        self,
        connection: AsyncConnection,
        original: TransferRecord,
        claim: Claim,
        points: int | None,
        reason: str | None,
    ) -> Posting:
        """Post the next part of ``original``'s reversal; the caller holds its lock."""
        posting = await reversals.post_part(
            self.kernel, connection, original, claim, points, reason
        )
        if (
            not posting.replayed
            and original.kind is TransferKind.CONVERSION
            and original.to_partner
        ):
            # The liability goes back: the target now owes the source this part's worth.
            await self.owe_for_conversion(
                connection, posting.transfer, original.to_partner, original.partner
            )
        return posting

    async def owe_for_conversion(
        self, connection: AsyncConnection, transfer: TransferRecord, debtor: str, creditor: str
    ) -> None:
        """A conversion moves liability: the source partner owes the target the worth of
        the points the target now owes the member (a reversal, the other way round)."""
        target = transfer.to_partner or creditor
        points = transfer.received_points or 0
        amount = self.coalition.partners[target].point_value * points
        await repository.insert_obligation(
            connection,
            {
                "kind": "conversion",
                "debtor": debtor,
                "creditor": creditor,
                "amount": str(amount),
                "transfer_id": transfer.id,
                "created_at": self.clock(),
            },
        )

    async def absorb_wallets(
        self, connection: AsyncConnection, retired: str, survivor: str
    ) -> list[Posting]:
        """Within a merge's transaction: move every point of the retired member to the
        survivor (merging.py)."""
        return await merging.absorb_wallets(connection, self.kernel, retired, survivor)
