"""Per-request context: the service and the data loaders that batch nested reads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import strawberry
from strawberry.dataloader import DataLoader

from ..records import EnrolmentRecord, LegRecord, MemberRecord, TransferRecord, WalletRecord
from ..service import LedgerService

K = TypeVar("K")
V = TypeVar("V")


def _batch(
    fetch: Callable[[Sequence[K]], Awaitable[dict[K, V]]], default: Callable[[], V]
) -> Callable[[list[K]], Awaitable[list[V]]]:
    async def load(keys: list[K]) -> list[V]:
        found = await fetch(keys)
        return [found.get(key, default()) for key in keys]

    return load


def _none() -> None:
    return None


@dataclass
class Loaders:
    members: DataLoader[str, MemberRecord | None]
    wallets: DataLoader[str, list[WalletRecord]]
    enrolments: DataLoader[str, list[EnrolmentRecord]]
    transfers: DataLoader[int, TransferRecord | None]
    legs: DataLoader[int, list[LegRecord]]
    reversals: DataLoader[int, int | None]

    @classmethod
    def for_service(cls, service: LedgerService) -> Loaders:
        return cls(
            members=DataLoader(_batch(service.members, _none)),
            wallets=DataLoader(_batch(service.wallets, list)),
            enrolments=DataLoader(_batch(service.enrolments, list)),
            transfers=DataLoader(_batch(service.transfers, _none)),
            legs=DataLoader(_batch(service.legs, list)),
            reversals=DataLoader(_batch(service.reversals, _none)),
        )


@dataclass
class Context:
    service: LedgerService
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders.for_service(self.service)


Info = strawberry.Info[Context, None]
