"""What follows a posting inside its own transaction: projections that must be right the
moment the posting commits (a member's qualifying value and tier, challenge counters).

The ledger calls every observer the composition root gave it (``LedgerService.observers``)
once per new posting (never for a replay; a batch's postings all at once: ``posted_batch``)
and once per merge, with the posting's connection: what an observer writes commits or
rolls back with the posting. Observers do O(1) work per posting (amortised), never a rescan
of a member's history.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.ledger.records import TransferRecord


class PostingObserver(Protocol):
    async def posted(
        self, connection: AsyncConnection, transfer: TransferRecord, scope: str
    ) -> None:
        """``transfer`` was just posted (``scope``: its idempotency scope)."""

    async def posted_batch(
        self, connection: AsyncConnection, posted: Sequence[tuple[TransferRecord, str]]
    ) -> None:
        """A batch of transfers was just posted, in this order (``ledger.batch``): the same
        as ``posted`` for each, in set-based statements."""

    async def merging(self, connection: AsyncConnection, retired: str, survivor: str) -> None:
        """The retired member is being merged into the survivor (before its wallets move)."""
