"""`coalition secrets`: the master key that seals the secrets kept in the database.

``new-master-key`` prints a fresh key. ``status`` counts the sealed values under each master
key. ``rewrap`` moves every value to the current master key (``COALITION_MASTER_KEY``),
opening it with a previous one (``COALITION_PREVIOUS_MASTER_KEYS``); values stored in clear
text by an older version are sealed. Only the wrapped data keys change; each value is
replaced only if nobody changed it meanwhile, so it is safe while gateways run.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.api.auditing import record_cli
from gateway.api.cli_database import with_database
from gateway.api.settings import Settings
from gateway.auth import keys
from gateway.kernel.sealing import PREFIX, Sealer, SealError, is_sealed
from gateway.webhooks import secrets as webhooks

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


@dataclass(frozen=True)
class SealedColumn:
    """Where sealed values live: each row's (key, sealing context, stored value), and a
    compare-and-set replacement."""

    name: str
    stored: Callable[[AsyncConnection], Awaitable[list[tuple[str, str, str]]]]
    replace: Callable[[AsyncConnection, str, str, str], Awaitable[bool]]


COLUMNS: tuple[SealedColumn, ...] = (
    SealedColumn("signing keys", keys.stored, keys.replace),
    SealedColumn("webhook secrets", webhooks.sealed_secrets, webhooks.replace_sealed),
)


@dataclass
class Tally:
    rewrapped: int = 0
    sealed: int = 0  # clear text sealed
    current: int = 0  # already under the current master key
    unopenable: list[str] = field(default_factory=list)
    masters: Counter[str] = field(default_factory=Counter)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser(
        "secrets", help="the master key sealing signing keys and webhook secrets"
    )
    actions = group.add_subparsers(dest="action", required=True)
    actions.add_parser("new-master-key", help="print a new random master key")
    actions.add_parser("status", help="how many sealed values are under each master key")
    actions.add_parser(
        "rewrap",
        help="move every sealed value to the current master key (after a rotation); "
        "exits 1 if a value opens under no configured key",
    )


def secrets(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "new-master-key":
        from gateway.kernel.sealing import new_master_key

        print(new_master_key())
        return 0
    sealer = settings.sealer()
    tallies = with_database(settings, lambda engine: _run(engine, sealer, args.action))
    for column, tally in zip(COLUMNS, tallies, strict=True):
        _report(column.name, tally, sealer, args.action)
    unopenable = sum(len(tally.unopenable) for tally in tallies)
    if unopenable:
        print(
            f"error: {unopenable} value(s) open under no configured master key: set the key "
            "they were sealed with in COALITION_PREVIOUS_MASTER_KEYS",
            file=sys.stderr,
        )
        return 1
    return 0


async def _run(engine: AsyncEngine, sealer: Sealer, action: str) -> list[Tally]:
    tallies = []
    for column in COLUMNS:
        async with engine.begin() as connection:
            tallies.append(await _column(connection, column, sealer, write=action == "rewrap"))
    if action == "rewrap":
        moved = {
            "rewrapped": sum(tally.rewrapped for tally in tallies),
            "sealed": sum(tally.sealed for tally in tallies),
        }
        stuck = sum(len(tally.unopenable) for tally in tallies)
        await record_cli(
            engine,
            "secrets.rewrap",
            ("master_key", sealer.current_id),
            data=moved,
            outcome="failed" if stuck else "ok",
            detail="UNOPENABLE_VALUES" if stuck else None,
        )
    return tallies


async def _column(
    connection: AsyncConnection, column: SealedColumn, sealer: Sealer, write: bool
) -> Tally:
    tally = Tally()
    for key, context, value in await column.stored(connection):
        if not is_sealed(value):
            tally.masters["clear text"] += 1
            if write and await column.replace(
                connection, key, value, sealer.seal(value.encode(), context)
            ):
                tally.sealed += 1
            continue
        tally.masters[value[len(PREFIX) :].split(":", 1)[0]] += 1
        try:
            if not sealer.needs_rewrap(value):
                tally.current += 1
                continue
            rewrapped = sealer.rewrap(value, context)
        except SealError:
            tally.unopenable.append(key)
            continue
        if write and await column.replace(connection, key, value, rewrapped):
            tally.rewrapped += 1
    return tally


def _report(name: str, tally: Tally, sealer: Sealer, action: str) -> None:
    if action == "status":
        under = ", ".join(
            f"{count} under {'the current key ' if master == sealer.current_id else ''}{master}"
            for master, count in sorted(tally.masters.items())
        )
        print(f"{name}: {under or 'none'}")
    else:
        print(
            f"{name}: {tally.rewrapped} re-wrapped, {tally.sealed} sealed from clear text, "
            f"{tally.current} already under {sealer.current_id}"
        )
    for key in _short(tally.unopenable):
        print(f"  {key}: malformed, or sealed under a master key not configured", file=sys.stderr)


def _short(keys: Sequence[str], most: int = 20) -> Sequence[str]:
    return keys if len(keys) <= most else [*keys[:most], f"... and {len(keys) - most} more"]
