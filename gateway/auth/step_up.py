"""Step-up where it cannot be raced: inside the transaction that posts the spending.

A member without a second factor that counts may spend at most a partner's step-up
threshold in ``STEP_UP_WINDOW`` (redeems, conversions, holds, gifts and rewards paid from
the pool, all counted together). Checked before the posting's transaction, two racing
spends could each pass with the other not yet counted. The services call ``check`` once
they hold the member's lock (``locks.live_member``), which makes one member's postings
take turns: the sum read then includes every spend that committed before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.auth.policy import STEP_UP_WINDOW, Access
from gateway.ledger import store as repository
from gateway.ledger.posting import Claim
from partners.config.coalition import Partner


@dataclass(frozen=True)
class StepUp:
    """The step-up rule for one call spending ``points`` of ``partner``'s pool."""

    access: Access
    partner: Partner
    points: int

    async def check(
        self,
        connection: AsyncConnection,
        member_id: str,
        now: datetime,
        retry_of: Sequence[tuple[str, str]] = (),
    ) -> None:
        """In the posting's transaction, under ``member_id``'s lock; ``retry_of``: the
        (scope, key) of transfers this call already claimed, left out of the sum."""
        if not self.access.needs_step_up(self.partner, now):
            return
        ids = [member_id, *await repository.merged_into(connection, member_id)]
        since = now - STEP_UP_WINDOW
        spent = await repository.spent_since(connection, ids, self.partner.slug, since, retry_of)
        self.access.step_up(self.partner, self.points, now, spent)

    def guard(
        self, member_id: str, now: datetime, claim: Claim
    ) -> Callable[[AsyncConnection, int], Awaitable[None]]:
        """``check`` as a ``Kernel.post`` guard: it runs once the transfer claimed its key
        (never on a replay), which it leaves out of the sum."""

        async def guard(connection: AsyncConnection, transfer_id: int) -> None:
            own = (claim.scope, claim.key)
            await self.check(connection, member_id, now, [own])

        return guard
