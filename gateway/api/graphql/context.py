"""Per-request context: the service and the data loaders that batch nested reads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar

import strawberry
from strawberry.dataloader import DataLoader

from gateway.api.authenticate import Authenticator
from gateway.audit.entries import Entry
from gateway.audit.trail import AuditTrail
from gateway.auth.policy import Access
from gateway.auth.principal import Principal
from gateway.configuration.service import Configuration
from gateway.holds.service import HoldRecord, HoldService
from gateway.ledger.records import (
    EnrolmentRecord,
    LegRecord,
    MemberRecord,
    TransferRecord,
    WalletRecord,
)
from gateway.ledger.service import LedgerService
from gateway.members.identity import IdentityService
from gateway.members.store import IdentityRecord
from gateway.privacy.service import PrivacyService
from gateway.rewards.service import RewardService
from gateway.settlement.service import SettlementService
from gateway.webhooks.service import WebhookService
from gateway.webhooks.store import AttemptRecord

K = TypeVar("K")
V = TypeVar("V")


def _one(
    fetch: Callable[[Sequence[K]], Awaitable[dict[K, V]]],
) -> Callable[[list[K]], Awaitable[list[V | None]]]:
    async def load(keys: list[K]) -> list[V | None]:
        found = await fetch(keys)
        return [found.get(key) for key in keys]

    return load


def _many(
    fetch: Callable[[Sequence[K]], Awaitable[dict[K, list[V]]]],
) -> Callable[[list[K]], Awaitable[list[list[V]]]]:
    async def load(keys: list[K]) -> list[list[V]]:
        found = await fetch(keys)
        return [found.get(key, []) for key in keys]

    return load


def _held(holds: HoldService) -> Callable[[list[str]], Awaitable[list[dict[str, int]]]]:
    async def load(member_ids: list[str]) -> list[dict[str, int]]:
        found = await holds.held(member_ids)
        return [found.get(member_id, {}) for member_id in member_ids]

    return load


@dataclass
class Loaders:
    members: DataLoader[str, MemberRecord | None]
    wallets: DataLoader[str, list[WalletRecord]]
    enrolments: DataLoader[str, list[EnrolmentRecord]]
    transfers: DataLoader[int, TransferRecord | None]
    legs: DataLoader[int, list[LegRecord]]
    reversals: DataLoader[int, int | None]
    partners_of: DataLoader[str, set[str] | None]
    identities: DataLoader[str, list[IdentityRecord]]
    held: DataLoader[str, dict[str, int]]
    holds: DataLoader[int, HoldRecord | None]
    made_by: DataLoader[int, Entry | None]

    @classmethod
    def for_service(
        cls, service: LedgerService, identity: IdentityService, holds: HoldService
    ) -> Loaders:
        return cls(
            members=DataLoader(_one(service.members)),
            wallets=DataLoader(_many(service.wallets)),
            enrolments=DataLoader(_many(service.enrolments)),
            transfers=DataLoader(_one(service.transfers)),
            legs=DataLoader(_many(service.legs)),
            reversals=DataLoader(_one(service.reversals)),
            partners_of=DataLoader(_one(identity.partners_of)),
            identities=DataLoader(_many(identity.identities)),
            held=DataLoader(_held(holds)),
            holds=DataLoader(_one(holds.holds)),
            made_by=DataLoader(_one(AuditTrail(service.uow).made_by)),
        )


@dataclass
class Context:
    service: LedgerService
    principal: Principal
    identity: IdentityService
    authenticator: Authenticator
    holds: HoldService
    rewards: RewardService
    settlement: SettlementService
    configuration: Configuration
    webhooks: WebhookService
    privacy: PrivacyService | None = None  # members' data rights, as the app wires them

    @cached_property
    def access(self) -> Access:
        return Access(self.principal)

    @cached_property
    def loaders(self) -> Loaders:
        """Built on first use: a mutation that reads nothing nested needs none."""
        return Loaders.for_service(self.service, self.identity, self.holds)

    @cached_property
    def webhook_attempts(self) -> DataLoader[int, list[AttemptRecord]]:
        """The attempts of the deliveries on a page, read together."""
        return DataLoader(_many(self.webhooks.attempts))

    async def sees_transfer(self, record: TransferRecord) -> bool:
        access = self.access
        if access.is_operator:
            return True
        if record.member_id is None:
            return False
        member = await self.loaders.members.load(record.member_id)
        if member is None:
            return False
        if access.partner is not None and access.partner not in (
            record.partner,
            record.to_partner,
        ):
            return False
        return await self.sees_member(member.id)

    async def sees_member(self, member_id: str) -> bool:
        access = self.access
        if access.is_operator or access.member_id is not None:
            return access.sees_member(member_id, ())
        partners = await self.loaders.partners_of.load(member_id)
        return access.sees_member(member_id, partners or ())


Info = strawberry.Info[Context, None]
