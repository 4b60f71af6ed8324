"""The ledger's reads, each in its own read-only unit of work (``LedgerService`` has them)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.kernel.unit_of_work import UnitOfWork
from gateway.ledger import reversals
from gateway.ledger import store as repository
from gateway.ledger.records import (
    EnrolmentRecord,
    LegRecord,
    MemberRecord,
    TransferRecord,
    WalletRecord,
)


class LedgerReads:
    """Members, wallets, enrolments, transfers and their legs and reversals, pool figures,
    a member's history."""

    uow: UnitOfWork

    async def members(self, member_ids: Sequence[str]) -> dict[str, MemberRecord]:
        return await self.uow.read(lambda c: repository.members_by_id(c, member_ids))

    async def merged_into(self, member_id: str) -> list[str]:
        """The ids of the members merged into ``member_id`` (its history is theirs too)."""
        return await self.uow.read(lambda c: repository.merged_into(c, member_id))

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
