"""The service layer: enrol, earn, redeem, convert, reverse, and the reads behind them.

GraphQL, the CLI and jobs all call these; each call is one unit of work. Moving calls
carry an idempotency key: a retry returns the first answer and posts nothing new, and
the same key with a different request is ``IDEMPOTENCY_KEY_REUSED``. A call that fails
posts nothing, so its key stays free for a corrected retry.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.events import outbox
from gateway.kernel.errors import DomainError, ErrorCode, shown
from gateway.kernel.unit_of_work import UnitOfWork
from gateway.kernel.validation import (
    MAX_CUSTOMER_ID_LENGTH,
    MAX_KEY_LENGTH,
    MAX_REASON_LENGTH,
    check_amount,
    check_points,
    clean_text,
    invalid,
)
from gateway.ledger import exchange, posting_sql, reversals, transfer_events
from gateway.ledger import store as repository
from gateway.ledger.observers import PostingObserver
from gateway.ledger.ports import NoRemotePools, RemotePostings, SpendingCheck
from gateway.ledger.records import (
    Draft,
    Enrolled,
    EnrolmentRecord,
    LegRecord,
    MemberRecord,
    MemberRef,
    Posting,
    TransferRecord,
    WalletRecord,
    scope,
)
from gateway.ledger.rules import (
    AccountCode,
    Leg,
    TransferKind,
    assert_balanced,
    conversion_legs,
    earn_legs,
    merge_legs,
    redeem_legs,
    reversal_legs,
)
from partners.config.coalition import Coalition, Partner


def utcnow() -> datetime:
    return datetime.now(UTC)


def _fingerprint(request: dict[str, Any]) -> str:
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class _EnrolmentTaken(Exception):
    pass


class LedgerService:
    def __init__(
        self,
        engine: AsyncEngine,
        coalition: Coalition,
        clock: Callable[[], datetime] = utcnow,
        observers: Sequence[PostingObserver] = (),
    ) -> None:
        self.engine = engine
        # Called in every posting's transaction (tiers, challenge counters): see observers.py.
        self.observers = list(observers)
        self.coalition = coalition
        self.clock = clock
        self.uow = UnitOfWork(engine)
        self._system_accounts: dict[tuple[str, AccountCode], int] = {}
        # Plugged in by the composition root: gateway.remote.connect_pools.
        self.remote: RemotePostings = NoRemotePools()

    async def start(self) -> None:
        """Create every pool's system accounts (once) and remember their ids."""

        async def work(connection: AsyncConnection) -> dict[tuple[str, AccountCode], int]:
            return await repository.ensure_system_accounts(connection, self.coalition.partners)

        self._system_accounts = await self.uow.write(work)

    # Configuration

    def partner(self, slug: str, field: str = "partner") -> Partner:
        partner = self.coalition.partner(slug)
        if partner is None:
            raise DomainError(ErrorCode.UNKNOWN_PARTNER, f"No partner {shown(slug)}.", (field,))
        return partner

    # Members

    async def enrol(self, partner: str, customer_id: str) -> Enrolled:
        self.partner(partner)
        cleaned = clean_text(customer_id, "partner_customer_id", MAX_CUSTOMER_ID_LENGTH, True)
        assert cleaned is not None
        if self.coalition.is_remote(partner):
            # A partner keeping its own points is asked whether the customer exists (outside
            # any transaction); an enrolment already made is answered without asking.
            known = await self.uow.read(lambda c: repository.enrolment(c, partner, cleaned))
            if known is None:
                await self.remote.check_customer(partner, cleaned)

        async def work(connection: AsyncConnection) -> Enrolled:
            existing = await repository.enrolment(connection, partner, cleaned)
            if existing is not None:
                members = await repository.members_by_id(connection, [existing.member_id])
                return Enrolled(members[existing.member_id], existing, created=False)
            member = MemberRecord(str(uuid.uuid4()), self.clock())
            await repository.insert_member(connection, member.id, member.created_at)
            if not await repository.claim_enrolment(
                connection, partner, cleaned, member.id, member.created_at
            ):
                raise _EnrolmentTaken  # a concurrent call enrolled the pair first
            joined = outbox.enrolled(member.id, partner, cleaned, member.created_at)
            await outbox.append(connection, [joined])
            await self._signup_bonus(connection, partner, member.id)
            enrolment = EnrolmentRecord(partner, cleaned, member.id, member.created_at)
            return Enrolled(member, enrolment, created=True)

        try:
            return await self.uow.write(work)
        except _EnrolmentTaken:
            return await self.uow.write(work)

    async def _signup_bonus(
        self, connection: AsyncConnection, partner: str, member_id: str
    ) -> None:
        """A new member's sign-up bonus, in the enrolment's transaction."""
        config = self.coalition.partners[partner]
        points = config.earning.signup_bonus
        if not points or config.pool.remote:
            return
        values = {
            **self._claim(f"signup:{partner}", member_id, {"member": member_id}),
            "kind": TransferKind.EARN.value,
            "partner": partner,
            "points": points,
            "reason": "sign-up bonus",
        }
        await self._post(connection, values, member_id, earn_legs(partner, points))

    async def _resolve(self, connection: AsyncConnection, ref: MemberRef) -> str:
        """The member a reference names now: a merged member's id gives the survivor."""
        if ref.id is not None:
            found = await repository.members_by_id(connection, [ref.id])
            if ref.id in found:
                return found[ref.id].id
            raise DomainError(ErrorCode.UNKNOWN_MEMBER, "No such member.", ("member", "id"))
        return await self._enrolled(connection, ref)

    async def _enrolled(self, connection: AsyncConnection, ref: MemberRef) -> str:
        assert ref.partner is not None and ref.customer_id is not None
        enrolment = await repository.enrolment(connection, ref.partner, ref.customer_id)
        if enrolment is None:
            raise DomainError(
                ErrorCode.UNKNOWN_MEMBER,
                f"No member is enrolled at '{ref.partner}' as {shown(ref.customer_id)}.",
                ("member", "partner_customer_id"),
            )
        return enrolment.member_id

    async def _live(self, connection: AsyncConnection, ref: MemberRef) -> str:
        """In a write: the member to post to, locked so that no merge moves their wallets
        until this transaction ends."""
        member_id = ref.id or await self._enrolled(connection, ref)
        live = await repository.live_member(connection, member_id)
        if live is None:
            raise DomainError(ErrorCode.UNKNOWN_MEMBER, "No such member.", ("member", "id"))
        return live

    async def resolve_member(self, ref: MemberRef) -> str:
        return await self.uow.read(lambda connection: self._resolve(connection, ref))

    # Moving points

    async def _replay(
        self, connection: AsyncConnection, scope: str, key: str, fingerprint: str
    ) -> Posting | None:
        found = await repository.transfer_by_key(connection, scope, key)
        if found is None:
            return None
        transfer, stored_fingerprint = found
        if stored_fingerprint != fingerprint:
            raise DomainError(
                ErrorCode.IDEMPOTENCY_KEY_REUSED,
                "This idempotency key was used for a different request.",
                ("idempotency_key",),
            )
        legs = await repository.legs_of(connection, [transfer.id])
        return Posting(transfer, tuple(legs[transfer.id]), replayed=True)

    async def _post(
        self,
        connection: AsyncConnection,
        values: dict[str, Any],
        member_id: str | None,
        legs: list[Leg],
        guard: Callable[[AsyncConnection, int], Awaitable[None]] | None = None,
        event_data: Mapping[str, Any] | None = None,
    ) -> Posting:
        """Claim the key and post the legs; ``guard`` runs between the two (not on a
        replay) with the new transfer's id, and may raise to refuse the whole posting.
        The posting's event (``event_data`` added to its data) is appended last."""
        assert_balanced(legs)
        scope, key, fingerprint = (
            values["idempotency_scope"],
            values["idempotency_key"],
            values["request_hash"],
        )
        values = {**values, "member_id": member_id, "created_at": self.clock()}
        wallet: WalletRecord | None = None
        posted: tuple[int, list[LegRecord], WalletRecord] | None = None
        fast = guard is None and posting_sql.one_statement(connection, legs)
        try:
            if fast:
                # One statement claims, credits and enters (see gateway/posting_sql.py).
                posted = await posting_sql.post_credit(
                    connection, values, member_id, legs, self._system_accounts
                )
                transfer_id = None if posted is None else posted[0]
            else:
                transfer_id = await repository.claim_transfer(connection, values)
        except IntegrityError as error:
            # Earns and redeems name a member by id without reading it first: the
            # transfer's foreign key is the check.
            if _is_foreign_key_violation(error):
                raise DomainError(
                    ErrorCode.UNKNOWN_MEMBER, "No such member.", ("member", "id")
                ) from None
            raise
        if transfer_id is None:
            # A concurrent call with this key committed first: answer as it did.
            replay = await self._replay(connection, scope, key, fingerprint)
            assert replay is not None
            return replay
        if guard is not None:
            await guard(connection, transfer_id)
        try:
            if posted is not None:
                _, records, wallet = posted
            else:
                records = await repository.post_legs(
                    connection, transfer_id, member_id, legs, self._system_accounts
                )
        except repository.Overdraft as overdraft:
            raise DomainError(
                ErrorCode.INSUFFICIENT_POINTS,
                f"The wallet at '{overdraft.pool}' holds {overdraft.available} points; "
                f"{overdraft.needed} are needed.",
                ("points",),
            ) from None
        transfer = TransferRecord(
            id=transfer_id,
            kind=TransferKind(values["kind"]),
            member_id=member_id,
            partner=values["partner"],
            to_partner=values.get("to_partner"),
            points=values["points"],
            received_points=values.get("received_points"),
            purchase_amount=_decimal(values.get("purchase_amount")),
            rate=_decimal(values.get("rate")),
            fee=values.get("fee"),
            reason=values.get("reason"),
            reverses_id=values.get("reverses_id"),
            idempotency_key=key,
            created_at=values["created_at"],
        )
        for observer in self.observers:
            await observer.posted(connection, transfer, scope)
        await outbox.append(connection, [transfer_events.posted(transfer, event_data)])
        return Posting(transfer, tuple(records), replayed=False, wallet=wallet)

    def _claim(self, scope: str, key: str, request: dict[str, Any]) -> dict[str, Any]:
        cleaned = clean_text(key, "idempotency_key", MAX_KEY_LENGTH, True)
        return {
            "idempotency_scope": scope,
            "idempotency_key": cleaned,
            "request_hash": _fingerprint(request),
        }

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
        claim = self._claim(f"earn:{partner}", idempotency_key, request)
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
            member_id = await self._live(connection, member)
            values = {
                **claim,
                "kind": TransferKind.EARN.value,
                "partner": partner,
                "points": points,
                "purchase_amount": str(purchase_amount) if purchase_amount is not None else None,
                "reason": reason,
            }
            return await self._post(connection, values, member_id, earn_legs(partner, points))

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
        claim = self._claim(scope("redeem", partner, caller), idempotency_key, request)
        if self.coalition.is_remote(partner):
            await self._step_up_before(member, step_up)
            draft = Draft(TransferKind.REDEEM, claim, partner, points, reason=reason)
            return await self.remote.run(draft, member)

        async def work(connection: AsyncConnection) -> Posting:
            member_id = await self._live(connection, member)
            values = {
                **claim,
                "kind": TransferKind.REDEEM.value,
                "partner": partner,
                "points": points,
                "reason": reason,
            }
            guard = step_up.guard(member_id, self.clock(), claim) if step_up else None
            legs = redeem_legs(partner, points)
            return await self._post(connection, values, member_id, legs, guard)

        return await self.uow.write(work)

    async def _step_up_before(self, member: MemberRef, step_up: SpendingCheck | None) -> None:
        """A remote pool's posting runs as a saga, not in one transaction: its step-up is
        checked before it starts (two such spends racing may both pass)."""
        if step_up is None:
            return

        async def work(connection: AsyncConnection) -> None:
            member_id = await self._resolve(connection, member)
            await step_up.check(connection, member_id, self.clock())

        await self.uow.read(work)

    async def quote(
        self, member_id: str, source: str, target: str, points: int
    ) -> tuple[exchange.Quote, int]:
        """What converting would give now, and the member's balance at the source."""
        quote = exchange.quote(self.coalition, source, target, points, self.clock())

        async def work(connection: AsyncConnection) -> str:
            return await self._resolve(connection, MemberRef(id=member_id))

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
        claim = self._claim(scope("convert", member_id), idempotency_key, request)
        if self.coalition.is_remote(source) or self.coalition.is_remote(target):
            await self._step_up_before(MemberRef(id=member_id), step_up)
            quote = exchange.quote(self.coalition, source, target, points, self.clock())
            draft = Draft(
                TransferKind.CONVERSION, claim, source, points, to_partner=target, quote=quote
            )
            return await self.remote.run(draft, MemberRef(id=member_id))

        async def work(connection: AsyncConnection) -> Posting:
            replay = await self._replay(connection, *self._key_of(claim))
            if replay is not None:
                return replay
            quote = exchange.quote(self.coalition, source, target, points, self.clock())
            owner = await self._live(connection, MemberRef(id=member_id))
            values = {
                **claim,
                "kind": TransferKind.CONVERSION.value,
                "partner": source,
                "to_partner": target,
                "points": points,
                "received_points": quote.received,
                "rate": str(quote.rate),
                "fee": quote.fee,
            }
            guard = step_up.guard(owner, self.clock(), claim) if step_up else None
            posting = await self._post(connection, values, owner, conversion_legs(quote), guard)
            if not posting.replayed:
                await self._owe_for_conversion(connection, posting.transfer, source, target)
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
            claim = self._claim(f"reverse:{original.partner}", idempotency_key, request)
            replay = await self._replay(connection, *self._key_of(claim))
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
            return await self._reverse(connection, original, claim, points, reason)

        return await self.uow.write(work)

    async def compensate(
        self, connection: AsyncConnection, transfer_id: int, key: str, reason: str
    ) -> Posting:
        """Within a saga's transaction: reverse its local step in full, once per ``key``."""
        original = await reversals.original(connection, transfer_id)
        assert original is not None
        claim = self._claim("compensate", key, {"transfer": transfer_id})
        replay = await self._replay(connection, *self._key_of(claim))
        if replay is not None:
            return replay
        return await self._reverse(connection, original, claim, None, reason)

    async def _reverse(
        self,
        connection: AsyncConnection,
        original: TransferRecord,
        claim: dict[str, Any],
        points: int | None,
        reason: str | None,
    ) -> Posting:
        """Post the next part of ``original``'s reversal; the caller holds its lock."""
        before = await reversals.reversed_so_far(connection, original.id)
        original_legs = (await repository.legs_of(connection, [original.id]))[original.id]
        legs = reversal_legs(
            original.kind,
            [Leg(leg.pool, leg.account, leg.amount) for leg in original_legs],
            original.points,
            points,
            before,
        )
        part = points if points is not None else original.points - before
        values = {
            **claim,
            "kind": TransferKind.REVERSAL.value,
            "partner": original.partner,
            "to_partner": original.to_partner,
            "points": part,
            "reason": reason,
            "reverses_id": original.id,
        }
        if original.kind is TransferKind.CONVERSION:
            # What this part gives back of the target points and of the fee.
            values["received_points"] = -sum(
                leg.amount
                for leg in legs
                if leg.pool == original.to_partner and leg.account is not AccountCode.LIQUIDITY
            )
            values["fee"] = -sum(leg.amount for leg in legs if leg.account is AccountCode.FEES)
            values["rate"] = str(original.rate) if original.rate is not None else None
        owner = original.member_id
        if owner is not None:
            # A merged member's points now live with the survivor.
            owner = await repository.live_member(connection, owner)
        reverses = {
            "reverses_kind": original.kind.value,
            "reverses_at": original.created_at.isoformat(),
        }
        posting = await self._post(connection, values, owner, legs, event_data=reverses)
        if posting.replayed:
            return posting  # a replay writes nothing more
        await reversals.add(connection, original.id, before, part, posting.transfer.id)
        if original.kind is TransferKind.CONVERSION and original.to_partner:
            # The liability goes back: the target now owes the source this part's worth.
            await self._owe_for_conversion(
                connection, posting.transfer, original.to_partner, original.partner
            )
        return posting

    async def _owe_for_conversion(
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
        survivor, one MERGE transfer per pool, so both histories keep the movement."""
        for observer in self.observers:
            await observer.merging(connection, retired, survivor)
        postings = []
        for wallet in (await repository.wallets_of(connection, [retired])).get(retired, []):
            if wallet.balance <= 0:
                continue
            values = {
                "idempotency_scope": f"merge:{retired}",
                "idempotency_key": wallet.pool,
                "request_hash": _fingerprint({"into": survivor, "pool": wallet.pool}),
                "kind": TransferKind.MERGE.value,
                "partner": wallet.pool,
                "points": wallet.balance,
                "reason": "Accounts merged after the member proved both sign-ins",
            }
            legs = merge_legs(wallet.pool, retired, survivor, wallet.balance)
            moved = {"retired": retired}
            postings.append(await self._post(connection, values, survivor, legs, None, moved))
        if not postings:
            await outbox.append(connection, [outbox.merged(survivor, retired, self.clock())])
        return postings

    @staticmethod
    def _key_of(claim: dict[str, Any]) -> tuple[str, str, str]:
        return claim["idempotency_scope"], claim["idempotency_key"], claim["request_hash"]

    # Reads

    async def members(self, member_ids: Sequence[str]) -> dict[str, MemberRecord]:
        return await self.uow.read(lambda c: repository.members_by_id(c, member_ids))

    async def wallets(self, member_ids: Sequence[str]) -> dict[str, list[WalletRecord]]:
        return await self.uow.read(lambda c: repository.wallets_of(c, member_ids))

    async def enrolments(self, member_ids: Sequence[str]) -> dict[str, list[EnrolmentRecord]]:
        return await self.uow.read(lambda c: repository.enrolments_of(c, member_ids))

    async def transfers(self, transfer_ids: Sequence[int]) -> dict[int, TransferRecord]:
        return await self.uow.read(lambda c: repository.transfers_by_id(c, transfer_ids))

    async def legs(self, transfer_ids: Sequence[int]) -> dict[int, list[LegRecord]]:
        return await self.uow.read(lambda c: repository.legs_of(c, transfer_ids))

    async def reversals(self, transfer_ids: Sequence[int]) -> dict[int, int]:
        return await self.uow.read(lambda c: reversals.latest(c, transfer_ids))

    async def figures(self, pool: str) -> dict[str, int]:
        return await self.uow.read(lambda c: repository.pool_figures(c, pool))

    async def history(
        self, member_id: str, pool: str | None, before: int | None, limit: int
    ) -> list[TransferRecord]:
        async def work(connection: AsyncConnection) -> list[TransferRecord]:
            ids = [member_id, *await repository.merged_into(connection, member_id)]
            return await repository.member_history(connection, ids, pool, before, limit)

        return await self.uow.read(work)


def _decimal(text: str | None) -> Decimal | None:
    return Decimal(text) if text else None


def _is_foreign_key_violation(error: IntegrityError) -> bool:
    text = str(error.orig).lower()
    return "foreign key" in text
