"""The sagas' pieces: a draft's values and legs, the pool adapters, the errors callers get."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.kernel.errors import DomainError, ErrorCode, shown
from gateway.ledger import store as repository
from gateway.ledger.exchange import Quote
from gateway.ledger.posting import Claim
from gateway.ledger.records import Draft, Posting
from gateway.ledger.rules import TransferKind, conversion_legs, earn_legs, redeem_legs
from gateway.remote.record import Operation
from partners.remote.adapter import RemotePool
from partners.remote.exceptions import RemoteInsufficientPoints, RemoteRefused, RemoteUnknownMember

if TYPE_CHECKING:
    from gateway.ledger.service import LedgerService


class Pieces:
    """What running, resuming and the balances share."""

    ledger: LedgerService
    pools: dict[str, RemotePool]

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
            f"{self._name(partner)} refused the {self._what(operation)}: {describe(refusal)}.",
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


def describe(refusal: Exception) -> str:
    if isinstance(refusal, RemoteRefused):
        return f"{refusal.status} {refusal.code or 'refused'}"
    return str(refusal)[:200]
