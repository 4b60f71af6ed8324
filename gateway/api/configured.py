"""The configuration a command runs with: the one in the database (a new database imports
the configuration folder's first), as the servers use it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.api.settings import Settings
from gateway.configuration.service import Configuration
from gateway.ledger.service import LedgerService, utcnow
from partners.config.coalition import Coalition


async def configured(engine: AsyncEngine, settings: Settings) -> Coalition:
    return await Configuration(engine, utcnow).open(settings.config_dir)


async def configured_ledger(engine: AsyncEngine, settings: Settings) -> LedgerService:
    """The ledger service with the configuration in the database, and every programme
    observer (tiers, challenge counters)."""
    from gateway.earning.observer import observe_programme

    return observe_programme(LedgerService(engine, await configured(engine, settings)))
