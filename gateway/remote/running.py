"""Running a saga: record the operation, send the remote step, settle on the answer."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.kernel.errors import DomainError, ErrorCode
from gateway.ledger import locks
from gateway.ledger.records import Draft, MemberRef, Posting
from gateway.ledger.rules import TransferKind
from gateway.remote.metrics import remote_call
from gateway.remote.pieces import Pieces, describe
from gateway.remote.record import (
    COMPENSATED,
    COMPLETED,
    FAILED,
    FIRST_RETRY,
    MAX_RETRY,
    PENDING,
    Operation,
    customer_of,
    live_operation,
)
from gateway.remote.tables import remote_operations
from partners.remote.exceptions import RemoteRefused, RemoteUnavailable
from partners.remote.transactions import RemoteTransaction
from partners.remote.wire import derive_key

log = logging.getLogger("gateway.remote.operations")


class _Raced(Exception):
    """A concurrent call with the same key recorded its operation first."""


class Running(Pieces):
    """The running part of the remote operations."""

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
        existing = await live_operation(connection, claim.scope, claim.key)
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
        customer_id = await customer_of(connection, member_id, remote)
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
            with remote_call(operation.remote_partner, operation.movement):
                if operation.movement == "credit":
                    transaction = await pool.credit(
                        operation.customer_id,
                        operation.remote_points,
                        operation.remote_key,
                        reference,
                    )
                else:
                    transaction = await pool.debit(
                        operation.customer_id,
                        operation.remote_points,
                        operation.remote_key,
                        reference,
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
        why = describe(refusal)

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


_EMPTY: dict[str, Any] = {
    "remote_transaction_id": None,
    "compensation_id": None,
    "last_error": None,
}


def _key_reused() -> DomainError:
    return DomainError(
        ErrorCode.IDEMPOTENCY_KEY_REUSED,
        "This idempotency key was used for a different request.",
        ("idempotency_key",),
    )
