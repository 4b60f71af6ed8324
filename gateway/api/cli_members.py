"""`coalition members export MEMBER [--out FILE]` and `coalition members erase MEMBER
--yes`: members' data requests answered by an operator at the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.api.auditing import record_cli
from gateway.api.cli_database import with_database
from gateway.api.configured import configured_ledger
from gateway.api.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from gateway.privacy.service import PrivacyService


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("members", help="members' data requests: export, erase")
    actions = group.add_subparsers(dest="action", required=True)
    export = actions.add_parser(
        "export",
        help="write everything held about a member as JSON (all of it, however long)",
    )
    export.add_argument("member", metavar="MEMBER", help="the member's id (UUID or Member.id)")
    export.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    erase = actions.add_parser(
        "erase",
        help="erase a member: points to breakage, personal data replaced (irreversible)",
    )
    erase.add_argument("member", metavar="MEMBER", help="the member's id (UUID or Member.id)")
    erase.add_argument("--yes", action="store_true", help="confirm: erasure cannot be undone")


def _member_id(text: str) -> str | None:
    from gateway.api.graphql.scalars import decode_member_id, member_uuid

    return member_uuid(text.strip()) or decode_member_id(text.strip())


async def _service(engine: AsyncEngine, settings: Settings) -> PrivacyService:
    from gateway.api import jobs as wiring

    ledger = await configured_ledger(engine, settings)
    await ledger.start()
    return wiring.privacy(ledger)


def members(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.auth.principal import OperatorPrincipal
    from gateway.events.actor import current_actor
    from gateway.kernel.errors import DomainError

    member_id = _member_id(args.member)
    if member_id is None:
        print(f"error: {args.member!r} is not a member id", file=sys.stderr)
        return 2
    if args.action == "erase" and not args.yes:
        print("error: erasure cannot be undone: add --yes to erase", file=sys.stderr)
        return 2
    actor = current_actor.get() or "operator:cli"
    operator = OperatorPrincipal(subject=actor.removeprefix("operator:"), issuer="cli")

    async def work(engine: AsyncEngine) -> Any:
        service = await _service(engine, settings)
        if args.action == "export":
            document = await service.export(member_id, limit=None)
            # Personal data left the gateway: whose, and who took it (an erasure is told by
            # its event).
            target = ("member", member_id)
            await record_cli(engine, "members.export", target, member_id=member_id)
            return document
        return await service.erase(member_id, operator)

    try:
        done = with_database(settings, work)
    except DomainError as error:
        print(f"error: {error.code.value}: {error.message}", file=sys.stderr)
        return 1
    if args.action == "erase":
        forfeited = ", ".join(f"{p} {n}" for p, n in sorted(done.forfeited.items())) or "none"
        print(
            f"Erased member {done.member_id} at {done.erased_at.isoformat()}: "
            f"{done.released_holds} hold(s) released, points forfeited to breakage: {forfeited}."
        )
        return 0
    text = json.dumps(done, indent=2, ensure_ascii=False) + "\n"
    if args.out is None:
        sys.stdout.write(text)
        return 0
    target = Path(args.out)
    _write_private(target, text.encode())
    print(f"Wrote {target} ({len(text)} bytes).", file=sys.stderr)
    return 0


def _write_private(target: Path, body: bytes) -> None:
    """Write ``target`` readable by its owner only (personal data): through a new file of
    a random name beside it, created 0600 and exclusively (no file or link left there is
    followed or reused), then renamed over ``target``."""
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as partial:
            partial.write(body)
        os.replace(name, target)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
