"""Balances at remote partners, and checking a customer id before enrolling it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.kernel.errors import DomainError, ErrorCode, shown
from gateway.ledger import store as repository
from gateway.remote.metrics import remote_call
from gateway.remote.pieces import Pieces
from partners.remote.exceptions import RemoteError, RemoteUnknownMember


class Balances(Pieces):
    """The balances part of the remote operations."""

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
            with remote_call(partner, "balance"):
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
