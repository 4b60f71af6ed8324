"""What the ledger's service asks of the layers above it, as protocols: the composition
root plugs in the implementations (step-up from ``gateway.auth``, remote pools from
``gateway.remote``), so the ledger imports neither."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.ledger.records import Draft, MemberRef, Posting

if TYPE_CHECKING:
    from gateway.ledger.posting import Claim

# Runs once a posting claimed its key (never on a replay) with the new transfer's id; may
# raise to refuse the whole posting.
Guard = Callable[[AsyncConnection, int], Awaitable[None]]


class SpendingCheck(Protocol):
    """A rule a spending must pass under the member's lock (step-up, see gateway.auth)."""

    async def check(
        self,
        connection: AsyncConnection,
        member_id: str,
        now: datetime,
        retry_of: Sequence[tuple[str, str]] = (),
    ) -> None: ...

    def guard(self, member_id: str, now: datetime, claim: Claim) -> Guard: ...


class RemotePostings(Protocol):
    """Postings at partners that keep their own points (see gateway.remote)."""

    async def run(self, draft: Draft, member: MemberRef) -> Posting: ...

    async def check_customer(self, partner: str, customer_id: str) -> None: ...

    async def balance(self, member_id: str, partner: str) -> int | None: ...

    async def balance_of(self, partner: str, customer_id: str) -> int | None: ...


class NoRemotePools:
    """Until the composition root connects the remote pools: a coalition without any."""

    def _missing(self) -> RuntimeError:
        return RuntimeError("no remote pools connected (gateway.remote.connect_pools)")

    async def run(self, draft: Draft, member: MemberRef) -> Posting:
        raise self._missing()

    async def check_customer(self, partner: str, customer_id: str) -> None:
        raise self._missing()

    async def balance(self, member_id: str, partner: str) -> int | None:
        raise self._missing()

    async def balance_of(self, partner: str, customer_id: str) -> int | None:
        raise self._missing()
