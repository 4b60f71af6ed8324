"""The earning service as resolvers reach it, and the wallet figures it gives (pending and
owed points), batched per request."""

from __future__ import annotations

import weakref

from strawberry.dataloader import DataLoader

from gateway.api.graphql.context import Info
from gateway.earning.service import EarningService
from gateway.ledger.service import LedgerService
from gateway.tiers.service import TierService

_EARNING: weakref.WeakKeyDictionary[LedgerService, EarningService] = weakref.WeakKeyDictionary()


def programme(info: Info) -> EarningService:
    """The earning service of the request's ledger service: built once per ledger service
    (it keeps no state of its own), not per request."""
    service = info.context.service
    found = _EARNING.get(service)
    if found is None:
        tiers = TierService(service) if service.coalition.tiers is not None else None
        found = _EARNING[service] = EarningService(service, tiers)
    return found


async def pending_and_owed(info: Info, member_id: str, pool: str) -> tuple[int, int]:
    """A wallet's pending points and the points its member owes the pool, batched per
    request across the wallets asked for."""
    state = info.context.__dict__
    loader = state.get("programme_figures")
    if loader is None:
        service = programme(info)

        async def load(ids: list[str]) -> list[dict[str, tuple[int, int]]]:
            found = await service.figures(ids)
            return [found.get(member_id, {}) for member_id in ids]

        loader = state["programme_figures"] = DataLoader(load)
    figures: dict[str, tuple[int, int]] = await loader.load(member_id)
    return figures.get(pool, (0, 0))
