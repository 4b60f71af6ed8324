"""Earn, redeem and conversion at partners whose points live in their own systems.

Each such call is a saga recorded in ``remote_operations`` before the partner is called:

- **earn / redeem** forward one credit or debit; the gateway's own posting (issuance or
  redemption against the pool's REMOTE account) follows once the partner has answered.
- **hosted -> remote conversion**: the member's wallet is debited first (compensatable), then
  the partner is credited (the pivot). A refusal there compensates: the local conversion is
  reversed and the points are back in the wallet.
- **remote -> hosted conversion**: the partner is debited first (the pivot), then the
  gateway's wallet is credited. That posting cannot be refused (the quote is fixed and a
  wallet can always be credited), so recovery after the pivot only goes forward.

The remote step carries one idempotency key per operation. Its outcome is either known (a
transaction, or a refusal: nothing happened there) or unknown (timeout, 5xx, an answer we
cannot trust, a lookup that found nothing yet). An unknown outcome never compensates and
never moves on: the operation stays ``pending`` and is driven again with the same key, by
the caller's retry or by ``resume_due`` (a job), until the partner's answer is definite.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.kernel.errors import DomainError, ErrorCode, shown
from gateway.ledger import locks
from gateway.ledger import store as repository
from gateway.ledger.exchange import Quote
from gateway.ledger.posting import Claim
from gateway.ledger.records import Draft, MemberRef, Posting
from gateway.ledger.rules import TransferKind, conversion_legs, earn_legs, redeem_legs
from gateway.ledger.tables import remote_operations
from partners.remote.adapter import RemotePool
from partners.remote.exceptions import (
    RemoteError,
    RemoteInsufficientPoints,
    RemoteRefused,
    RemoteUnavailable,
    RemoteUnknownMember,
)
from partners.remote.transactions import RemoteTransaction
from partners.remote.wire import derive_key

if TYPE_CHECKING:
    from gateway.ledger.service import LedgerService

log = logging.getLogger("gateway.remote.operations")

PENDING, COMPLETED, FAILED, COMPENSATED = "pending", "completed", "failed", "compensated"
FIRST_RETRY = timedelta(seconds=15)  # a caller's own retry usually comes sooner
MAX_RETRY = timedelta(hours=1)


@dataclass(frozen=True)
class Operation:
    id: str
    kind: str
    status: str
    member_id: str
    partner: str
    to_partner: str | None
    remote_partner: str
    customer_id: str
    movement: str
    remote_points: int
    points: int
    received_points: int | None
    rate: str | None
    fee: int | None
    purchase_amount: str | None
    reason: str | None
    idempotency_scope: str
    idempotency_key: str
    request_hash: str
    remote_key: str
    remote_transaction_id: str | None
    transfer_id: int | None
    compensation_id: int | None
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Operation:
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})


class _Raced(Exception):
    """A concurrent call with the same key recorded its operation first."""


def connect_pools(ledger: LedgerService, pools: Mapping[str, RemotePool]) -> RemoteOperations:
    """The remote pools' sagas, plugged into ``ledger`` (its earn, redeem and conversion at a
    remote partner go through them)."""
    remote = RemoteOperations(ledger, pools)
    ledger.remote = remote
    return remote


class RemoteOperations:
    """Runs and resumes the sagas; ``pools`` holds an adapter per remote partner."""

    def __init__(self, ledger: LedgerService, pools: Mapping[str, RemotePool]) -> None:
        self.ledger = ledger
        self.pools = dict(pools)

    def check_configured(self) -> None:
        missing = [
            slug
            for slug, partner in self.ledger.coalition.partners.items()
            if partner.pool.remote and slug not in self.pools
        ]
        if missing:
            raise RuntimeError(f"no pool adapter for the remote pools of {', '.join(missing)}")

    async def aclose(self) -> None:
        for pool in self.pools.values():
            await pool.aclose()

    # ---- running ---------------------------------------------------------------------------

    async def run(self, draft: Draft, member: MemberRef) -> Posting:
        """Record the operation (and its local first step), then drive the remote step."""

        async def start(connection: AsyncConnection) -> Posting | Operation:
            return await self._start(connection, draft, member)

        try:
            started = await self.ledger.uow.write(start)
        except _Raced:
            started = await self.ledger.uow.write(start)
        if isinstance(started, Posting):
            return started
        return await self.drive(started)

    async def _start(
        self, connection: AsyncConnection, draft: Draft, member: MemberRef
    ) -> Posting | Operation:
        claim = draft.claim
        existing = await _live_operation(connection, claim.scope, claim.key)
        if existing is not None:
            if existing.request_hash != claim.fingerprint:
                raise _key_reused()
            if existing.status == PENDING:
                return existing
            if existing.status == COMPENSATED:
                raise self._compensated(existing)
        replay = await self.ledger.kernel.replay(connection, claim)
        if replay is not None:
            return replay
        member_id = await self.ledger.kernel.lock_member(connection, member)
        remote = self._remote_side(draft)
        self._pool(remote)
        customer_id = await _customer(connection, member_id, remote)
        now = self.ledger.clock()
        operation_id = str(uuid.uuid4())
        transfer_id = None
        if draft.kind is TransferKind.CONVERSION and remote == draft.to_partner:
            # Hosted -> remote: the wallet is debited now; a refusal later reverses it.
            posting = await self.ledger.kernel.post(
                connection, claim, self._values(draft), member_id, self._legs(draft)
            )
            if posting.replayed:
                raise _Raced
            assert draft.to_partner is not None
            await self.ledger.owe_for_conversion(
                connection, posting.transfer, draft.partner, draft.to_partner
            )
            transfer_id = posting.transfer.id
        quote = draft.quote
        to_remote = quote is not None and remote == draft.to_partner
        row = {
            **claim.columns(),
            **self._values(draft),
            "id": operation_id,
            "status": PENDING,
            "member_id": member_id,
            "remote_partner": remote,
            "customer_id": customer_id,
            "movement": self._movement(draft, remote),
            "remote_points": quote.received if quote and to_remote else draft.points,
            "remote_key": derive_key("coalition-operation", operation_id),
            "transfer_id": transfer_id,
            "attempts": 0,
            "next_attempt_at": now + FIRST_RETRY,
            "created_at": now,
            "updated_at": now,
        }
        try:
            await connection.execute(sa.insert(remote_operations).values(**row))
        except IntegrityError:
            raise _Raced from None  # the transaction rolls back; the retry finds theirs
        return Operation(**(_EMPTY | row))

    async def drive(self, operation: Operation) -> Posting:
        """Send the remote step (again, with its key) and settle on what the partner says."""
        pool = self._pool(operation.remote_partner)
        reference = f"coalition {operation.kind} {operation.id}"
        try:
            if operation.movement == "credit":
                transaction = await pool.credit(
                    operation.customer_id, operation.remote_points, operation.remote_key, reference
                )
            else:
                transaction = await pool.debit(
                    operation.customer_id, operation.remote_points, operation.remote_key, reference
                )
        except RemoteUnavailable as failure:
            await self._postpone(operation, f"outcome unknown: {failure}")
            raise self._unavailable(operation) from None
        except (RemoteRefused, ValueError) as refusal:
            raise await self._refused(operation, refusal) from None

        async def complete(connection: AsyncConnection) -> Posting:
            return await self._complete(connection, operation, transaction)

        return await self.ledger.uow.write(complete)

    async def _complete(
        self, connection: AsyncConnection, operation: Operation, transaction: RemoteTransaction
    ) -> Posting:
        if operation.transfer_id is not None:
            posting = await self._posting(connection, operation.transfer_id)
        else:
            member_id = await locks.live_member(connection, operation.member_id)
            draft = self._draft_of(operation)
            posting = await self.ledger.kernel.post(
                connection, draft.claim, self._values(draft), member_id, self._legs(draft)
            )
            if not posting.replayed and draft.kind is TransferKind.CONVERSION:
                assert draft.to_partner is not None
                await self.ledger.owe_for_conversion(
                    connection, posting.transfer, draft.partner, draft.to_partner
                )
        await connection.execute(
            sa.update(remote_operations)
            .where(remote_operations.c.id == operation.id)
            .where(remote_operations.c.status == PENDING)
            .values(
                status=COMPLETED,
                remote_transaction_id=transaction.id,
                transfer_id=posting.transfer.id,
                last_error=None,
                updated_at=self.ledger.clock(),
            )
        )
        return Posting(
            posting.transfer,
            posting.legs,
            posting.replayed,
            remote_balance=(operation.remote_partner, transaction.balance_after),
        )

    async def _refused(self, operation: Operation, refusal: Exception) -> DomainError:
        """The partner refused the remote step: nothing happened there. Fail the operation,
        or compensate the local step it already took."""
        why = _describe(refusal)

        async def work(connection: AsyncConnection) -> DomainError:
            now = self.ledger.clock()
            if operation.transfer_id is None:
                await connection.execute(
                    sa.update(remote_operations)
                    .where(remote_operations.c.id == operation.id)
                    .where(remote_operations.c.status == PENDING)
                    .values(status=FAILED, last_error=why, updated_at=now)
                )
                return self._refusal_error(operation, refusal)
            reason = f"Cancelled: {self._name(operation.remote_partner)} refused ({why})"
            compensation = await self.ledger.compensate(
                connection, operation.transfer_id, operation.id, reason[:500]
            )
            await connection.execute(
                sa.update(remote_operations)
                .where(remote_operations.c.id == operation.id)
                .where(remote_operations.c.status == PENDING)
                .values(
                    status=COMPENSATED,
                    compensation_id=compensation.transfer.id,
                    last_error=why,
                    updated_at=now,
                )
            )
            return self._compensated(operation, why)

        return await self.ledger.uow.write(work)

    async def _postpone(self, operation: Operation, detail: str) -> None:
        attempts = operation.attempts + 1
        delay = min(FIRST_RETRY * 2 ** min(attempts - 1, 12), MAX_RETRY)
        log.warning("remote operation %s: %s; retrying in %s", operation.id, detail, delay)

        async def work(connection: AsyncConnection) -> None:
            now = self.ledger.clock()
            await connection.execute(
                sa.update(remote_operations)
                .where(remote_operations.c.id == operation.id)
                .where(remote_operations.c.status == PENDING)
                .values(
                    attempts=remote_operations.c.attempts + 1,
                    last_error=detail[:500],
                    next_attempt_at=now + delay,
                    updated_at=now,
                )
            )

        await self.ledger.uow.write(work)

    # ---- the job ---------------------------------------------------------------------------

    async def resume_due(
        self, limit: int = 100, partners: Sequence[str] | None = None
    ) -> dict[str, int]:
        """Drive every pending operation whose retry is due; how each one ended now.

        Safe to run twice or from several workers at once: the remote step is sent with the
        operation's key, and each outcome is recorded by a conditional update. ``partners``
        limits it to operations at those partners.
        """
        now = self.ledger.clock()

        async def due(connection: AsyncConnection) -> list[Operation]:
            query = (
                sa.select(remote_operations)
                .where(remote_operations.c.status == PENDING)
                .where(remote_operations.c.next_attempt_at <= now)
            )
            if partners is not None:
                query = query.where(remote_operations.c.remote_partner.in_(partners))
            result = await connection.execute(
                query.order_by(remote_operations.c.next_attempt_at).limit(limit)
            )
            return [Operation.from_row(row) for row in result]

        counts = {COMPLETED: 0, FAILED: 0, COMPENSATED: 0, PENDING: 0}
        for operation in await self.ledger.uow.read(due):
            try:
                await self.drive(operation)
                counts[COMPLETED] += 1
            except DomainError as error:
                if error.code is ErrorCode.PARTNER_UNAVAILABLE:
                    counts[PENDING] += 1
                elif operation.transfer_id is not None:
                    counts[COMPENSATED] += 1
                else:
                    counts[FAILED] += 1
            except Exception:
                log.exception("remote operation %s could not be driven", operation.id)
                counts[PENDING] += 1
        return counts

    async def operations(
        self,
        status: str | None = None,
        member_id: str | None = None,
        limit: int = 100,
        partners: Sequence[str] | None = None,
    ) -> list[Operation]:
        async def work(connection: AsyncConnection) -> list[Operation]:
            query = sa.select(remote_operations)
            if partners is not None:
                query = query.where(remote_operations.c.remote_partner.in_(partners))
            if status is not None:
                query = query.where(remote_operations.c.status == status)
            if member_id is not None:
                query = query.where(remote_operations.c.member_id == member_id)
            query = query.order_by(remote_operations.c.created_at.desc()).limit(limit)
            return [Operation.from_row(row) for row in await connection.execute(query)]

        return await self.ledger.uow.read(work)

    async def balance(self, member_id: str, partner: str) -> int | None:
        """The member's balance at a remote partner now; None if they are not enrolled."""

        async def work(connection: AsyncConnection) -> str | None:
            found = await repository.enrolments_of(connection, [member_id])
            for enrolment in found.get(member_id, []):
                if enrolment.partner == partner:
                    return enrolment.customer_id
            return None

        customer_id = await self.ledger.uow.read(work)
        if customer_id is None:
            return None
        return await self.balance_of(partner, customer_id)

    async def balance_of(self, partner: str, customer_id: str) -> int | None:
        """A customer's balance at a remote partner now; None if the partner does not know
        them, ``PARTNER_UNAVAILABLE`` if it does not answer."""
        try:
            return await self._pool(partner).balance(customer_id)
        except RemoteUnknownMember:
            return None
        except RemoteError as error:
            raise DomainError(
                ErrorCode.PARTNER_UNAVAILABLE,
                f"{self._name(partner)} did not give the balance: {error}.",
            ) from None

    async def check_customer(self, partner: str, customer_id: str) -> None:
        """Before enrolling a customer id at a remote partner: the partner knows it, or
        ``UNKNOWN_CUSTOMER``; ``PARTNER_UNAVAILABLE`` (nothing enrolled, try again) when
        it does not answer."""
        field = ("partner_customer_id",)
        try:
            balance = await self.balance_of(partner, customer_id)
        except DomainError as error:
            raise DomainError(
                ErrorCode.PARTNER_UNAVAILABLE,
                f"{error.message} Nothing was enrolled: try again.",
                field,
            ) from None
        if balance is None:
            raise DomainError(
                ErrorCode.UNKNOWN_CUSTOMER,
                f"{self._name(partner)} has no customer {shown(customer_id)}.",
                field,
            )

    # ---- pieces ----------------------------------------------------------------------------

    def _pool(self, slug: str) -> RemotePool:
        pool = self.pools.get(slug)
        if pool is None:
            raise RuntimeError(f"no pool adapter for '{slug}', whose points live elsewhere")
        return pool

    def _remote_side(self, draft: Draft) -> str:
        if self.ledger.coalition.is_remote(draft.partner):
            return draft.partner
        assert draft.to_partner is not None and self.ledger.coalition.is_remote(draft.to_partner)
        return draft.to_partner

    @staticmethod
    def _movement(draft: Draft, remote: str) -> str:
        if draft.kind is TransferKind.EARN:
            return "credit"
        if draft.kind is TransferKind.REDEEM:
            return "debit"
        return "credit" if remote == draft.to_partner else "debit"

    def _values(self, draft: Draft) -> dict[str, Any]:
        quote = draft.quote
        return {
            "kind": draft.kind.value,
            "partner": draft.partner,
            "to_partner": draft.to_partner,
            "points": draft.points,
            "received_points": quote.received if quote else None,
            "rate": str(quote.rate) if quote else None,
            "fee": quote.fee if quote else None,
            "purchase_amount": str(draft.purchase_amount) if draft.purchase_amount else None,
            "reason": draft.reason,
        }

    def _legs(self, draft: Draft) -> list[Any]:
        coalition = self.ledger.coalition
        if draft.kind is TransferKind.EARN:
            return earn_legs(draft.partner, draft.points, remote=True)
        if draft.kind is TransferKind.REDEEM:
            return redeem_legs(draft.partner, draft.points, remote=True)
        assert draft.quote is not None and draft.to_partner is not None
        return conversion_legs(
            draft.quote, coalition.is_remote(draft.partner), coalition.is_remote(draft.to_partner)
        )

    def _draft_of(self, operation: Operation) -> Draft:
        quote = None
        if operation.to_partner is not None:
            assert operation.rate is not None and operation.received_points is not None
            rule = self.ledger.coalition.rules(operation.partner, operation.to_partner)
            quote = Quote(
                source=operation.partner,
                target=operation.to_partner,
                points=operation.points,
                fee=operation.fee or 0,
                rate=Decimal(operation.rate),
                received=operation.received_points,
                rule=rule[0] if rule else None,  # type: ignore[arg-type]
                at=operation.created_at,
            )
        return Draft(
            kind=TransferKind(operation.kind),
            claim=Claim(
                operation.idempotency_scope, operation.idempotency_key, operation.request_hash
            ),
            partner=operation.partner,
            points=operation.points,
            to_partner=operation.to_partner,
            quote=quote,
            purchase_amount=Decimal(operation.purchase_amount)
            if operation.purchase_amount
            else None,
            reason=operation.reason,
        )

    async def _posting(self, connection: AsyncConnection, transfer_id: int) -> Posting:
        transfer = (await repository.transfers_by_id(connection, [transfer_id]))[transfer_id]
        legs = await repository.legs_of(connection, [transfer_id])
        return Posting(transfer, tuple(legs[transfer_id]), replayed=False)

    def _name(self, slug: str) -> str:
        return self.ledger.coalition.partners[slug].name

    def _what(self, operation: Operation) -> str:
        return {"earn": "earn", "redeem": "redemption"}.get(operation.kind, "conversion")

    def _unavailable(self, operation: Operation) -> DomainError:
        then = (
            "complete it, or return the points if the partner refuses it,"
            if operation.transfer_id is not None
            else "complete it, or drop it if the partner refuses it,"
        )
        return DomainError(
            ErrorCode.PARTNER_UNAVAILABLE,
            f"{self._name(operation.remote_partner)} did not answer for certain, so the "
            f"{self._what(operation)} is pending (operation {operation.id}). The gateway will "
            f"{then} on its own; retrying with the same idempotency key is safe and tells "
            "the outcome.",
        )

    def _refusal_error(self, operation: Operation, refusal: Exception) -> DomainError:
        partner = operation.remote_partner
        if isinstance(refusal, RemoteInsufficientPoints):
            return DomainError(
                ErrorCode.INSUFFICIENT_POINTS,
                f"The wallet at '{partner}' holds {refusal.balance} points; "
                f"{operation.remote_points} are needed.",
                ("points",),
            )
        if isinstance(refusal, RemoteUnknownMember):
            return DomainError(
                ErrorCode.UNKNOWN_MEMBER,
                f"{self._name(partner)} has no member {shown(operation.customer_id)}.",
                ("member",),
            )
        return DomainError(
            ErrorCode.PARTNER_REFUSED,
            f"{self._name(partner)} refused the {self._what(operation)}: {_describe(refusal)}.",
        )

    def _compensated(self, operation: Operation, why: str | None = None) -> DomainError:
        source = self.ledger.coalition.partners[operation.partner]
        return DomainError(
            ErrorCode.PARTNER_REFUSED,
            f"{self._name(operation.remote_partner)} refused the conversion "
            f"({why or operation.last_error}); it was cancelled and the {operation.points} "
            f"{source.currency_name} went back to the wallet at '{operation.partner}'.",
        )


_EMPTY: dict[str, Any] = {
    "remote_transaction_id": None,
    "compensation_id": None,
    "last_error": None,
}


async def _live_operation(connection: AsyncConnection, scope: str, key: str) -> Operation | None:
    row = (
        await connection.execute(
            sa.select(remote_operations)
            .where(remote_operations.c.idempotency_scope == scope)
            .where(remote_operations.c.idempotency_key == key)
            .where(remote_operations.c.status != FAILED)
        )
    ).first()
    return None if row is None else Operation.from_row(row)


async def _customer(connection: AsyncConnection, member_id: str, partner: str) -> str:
    found = await repository.enrolments_of(connection, [member_id])
    for enrolment in found.get(member_id, []):
        if enrolment.partner == partner:
            return enrolment.customer_id
    raise DomainError(
        ErrorCode.UNKNOWN_MEMBER,
        f"The member is not enrolled at '{partner}', which keeps its points in its own "
        "system: enrol them there with their customer id first.",
        ("member",),
    )


def _key_reused() -> DomainError:
    return DomainError(
        ErrorCode.IDEMPOTENCY_KEY_REUSED,
        "This idempotency key was used for a different request.",
        ("idempotency_key",),
    )


def _describe(refusal: Exception) -> str:
    if isinstance(refusal, RemoteRefused):
        return f"{refusal.status} {refusal.code or 'refused'}"
    return str(refusal)[:200]


def operations_summary(operations: Sequence[Operation]) -> list[str]:
    """One line per operation, for the CLI."""
    return [
        f"{o.id}  {o.status:<11} {o.kind:<10} {o.partner}->{o.to_partner or o.partner}  "
        f"{o.points:>10}  attempts {o.attempts}  {o.last_error or ''}".rstrip()
        for o in operations
    ]
