"""What the CLI's commands share: migrate, then run some work against the configured
database, reporting an unreachable database in a sentence for the operator."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError

from gateway.api.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine


T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The database could not be reached or used; the message is for the operator."""


def with_database(settings: Settings, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Migrate (idempotent), then run ``work`` against the configured database."""
    from gateway.kernel.database import create_engine, migrate

    async def run() -> T:
        engine = create_engine(settings.database_url)
        try:
            await migrate(engine)
            return await work(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except (OSError, OperationalError, InterfaceError) as error:
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        cause = getattr(error, "orig", None) or error
        raise DatabaseUnavailable(f"cannot use the database {where}: {cause}") from None


def moment(text: str) -> datetime:
    """An argument that is a moment: ISO 8601 with a time zone (``Z`` or an offset)."""
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date and time: {text!r}") from None
    if found.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone, e.g. {text}Z")
    return found
