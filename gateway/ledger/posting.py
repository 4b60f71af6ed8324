"""The posting kernel: idempotency claims, the member lock, and one posting's steps in order."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.events import outbox
from gateway.kernel.errors import DomainError, ErrorCode, shown
from gateway.kernel.validation import MAX_KEY_LENGTH, clean_id
from gateway.ledger import batch, locks, posting_sql, transfer_events
from gateway.ledger import store as repository
from gateway.ledger.observers import PostingObserver
from gateway.ledger.ports import Guard
from gateway.ledger.records import LegRecord, MemberRef, Posting, TransferRecord, WalletRecord
from gateway.ledger.rules import AccountCode, Leg, TransferKind, assert_balanced


def fingerprint(request: dict[str, Any]) -> str:
    """A request's fingerprint: the same key with another fingerprint is another request."""
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Claim:
    """An idempotency claim: the key's scope, the key, and the request's fingerprint."""

    scope: str
    key: str
    fingerprint: str

    @classmethod
    def of(cls, scope: str, key: str, request: dict[str, Any]) -> Claim:
        """The claim of a caller's ``key`` (checked as the ``idempotency_key`` input)."""
        cleaned = clean_id(key, "idempotency_key", MAX_KEY_LENGTH)
        return cls(scope, cleaned, fingerprint(request))

    def columns(self) -> dict[str, str]:
        """The claim as the columns of the row that records it (a transfer, an operation)."""
        return {
            "idempotency_scope": self.scope,
            "idempotency_key": self.key,
            "request_hash": self.fingerprint,
        }


class Kernel:
    """The steps every posting shares, each in the caller's transaction (``connection``).

    A posting claims its idempotency key with its transfer row: a retry answers with the
    first posting and writes nothing, the same key with another request is
    ``IDEMPOTENCY_KEY_REUSED``, and a posting that fails leaves its key free.
    """

    def __init__(
        self, clock: Callable[[], datetime], observers: Sequence[PostingObserver] = ()
    ) -> None:
        self.clock = clock
        # Called in every posting's transaction (tiers, challenge counters): see observers.py.
        self.observers = list(observers)
        # Every pool's system accounts, by pool and code (``LedgerService.start`` fills it).
        self.system_accounts: dict[tuple[str, AccountCode], int] = {}

    @staticmethod
    def claim(scope: str, key: str, request: dict[str, Any]) -> Claim:
        return Claim.of(scope, key, request)

    async def resolve(self, connection: AsyncConnection, ref: MemberRef) -> str:
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

    async def lock_member(self, connection: AsyncConnection, ref: MemberRef) -> str:
        """In a write: the member to post to, locked so that no merge moves their wallets
        until this transaction ends (``locks.live_member``)."""
        member_id = ref.id or await self._enrolled(connection, ref)
        live = await locks.live_member(connection, member_id, refuse_erased=True)
        if live is None:
            raise DomainError(ErrorCode.UNKNOWN_MEMBER, "No such member.", ("member", "id"))
        return live

    async def replay(self, connection: AsyncConnection, claim: Claim) -> Posting | None:
        """The posting that took ``claim``'s key, if any; IDEMPOTENCY_KEY_REUSED when it
        answered another request."""
        found = await repository.transfer_by_key(connection, claim.scope, claim.key)
        if found is None:
            return None
        transfer, stored_fingerprint = found
        if stored_fingerprint != claim.fingerprint:
            raise DomainError(
                ErrorCode.IDEMPOTENCY_KEY_REUSED,
                "This idempotency key was used for a different request.",
                ("idempotency_key",),
            )
        legs = await repository.legs_of(connection, [transfer.id])
        return Posting(transfer, tuple(legs[transfer.id]), replayed=True)

    async def post_batch(
        self, connection: AsyncConnection, credits: Sequence[batch.Credit], at: datetime
    ) -> list[Posting]:
        """Post a batch of credits at ``at`` (PostgreSQL; see ``ledger.batch``): their keys
        free (``batch.taken``) and their members locked, as the caller found them."""
        return await batch.post_credits(
            connection, credits, at, self.system_accounts, self.observers
        )

    async def post(
        self,
        connection: AsyncConnection,
        claim: Claim,
        values: Mapping[str, Any],
        member_id: str | None,
        legs: list[Leg],
        guard: Guard | None = None,
        event_data: Mapping[str, Any] | None = None,
    ) -> Posting:
        """Claim the key and post the legs (``values``: the transfer's other columns);
        ``guard`` runs between the two (not on a replay) with the new transfer's id, and may
        raise to refuse the whole posting. Then the observers, and last the posting's event
        (``event_data`` added to its data)."""
        assert_balanced(legs)
        row = {**claim.columns(), **values, "member_id": member_id, "created_at": self.clock()}
        wallet: WalletRecord | None = None
        posted: tuple[int, list[LegRecord], WalletRecord] | None = None
        fast = guard is None and posting_sql.one_statement(connection, legs)
        try:
            if fast:
                # One statement claims, credits and enters (see posting_sql.py).
                posted = await posting_sql.post_credit(
                    connection, row, member_id, legs, self.system_accounts
                )
                transfer_id = None if posted is None else posted[0]
            else:
                transfer_id = await posting_sql.claim_transfer(connection, row)
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
            replay = await self.replay(connection, claim)
            assert replay is not None
            return replay
        if guard is not None:
            await guard(connection, transfer_id)
        try:
            if posted is not None:
                _, records, wallet = posted
            else:
                records = await posting_sql.post_legs(
                    connection, transfer_id, member_id, legs, self.system_accounts
                )
        except posting_sql.Overdraft as overdraft:
            raise DomainError(
                ErrorCode.INSUFFICIENT_POINTS,
                f"The wallet at '{overdraft.pool}' holds {overdraft.available} points; "
                f"{overdraft.needed} are needed.",
                ("points",),
            ) from None
        transfer = TransferRecord(
            id=transfer_id,
            kind=TransferKind(row["kind"]),
            member_id=member_id,
            partner=row["partner"],
            to_partner=row.get("to_partner"),
            points=row["points"],
            received_points=row.get("received_points"),
            purchase_amount=_decimal(row.get("purchase_amount")),
            rate=_decimal(row.get("rate")),
            fee=row.get("fee"),
            reason=row.get("reason"),
            reverses_id=row.get("reverses_id"),
            idempotency_key=claim.key,
            created_at=row["created_at"],
        )
        for observer in self.observers:
            await observer.posted(connection, transfer, claim.scope)
        await outbox.append(connection, [transfer_events.posted(transfer, event_data)])
        return Posting(transfer, tuple(records), replayed=False, wallet=wallet)


def _decimal(text: str | None) -> Decimal | None:
    return Decimal(text) if text else None


def _is_foreign_key_violation(error: IntegrityError) -> bool:
    text = str(error.orig).lower()
    return "foreign key" in text
