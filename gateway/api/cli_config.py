"""`coalition config apply DIR` and `coalition config export DIR`: the TOML folder as the
import and export format of the configuration the database keeps."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.api.cli_database import moment, with_database
from gateway.api.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from gateway.configuration.service import Applied


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("config", help="apply or export the coalition's configuration")
    actions = group.add_subparsers(dest="action", required=True)
    apply = actions.add_parser(
        "apply",
        help="show what a folder of TOML files would change; --apply applies it",
        description="Compares DIR (coalition.toml and a file per partner) with the "
        "configuration in the database and prints the difference. Nothing is written "
        "without --apply. Every running process applies a change within seconds.",
    )
    apply.add_argument("directory", metavar="DIR")
    apply.add_argument("--apply", action="store_true", help="write the change")
    apply.add_argument(
        "--effective-from",
        type=moment,
        metavar="MOMENT",
        help="when changed documents take effect (ISO 8601 with a zone; default now)",
    )
    export = actions.add_parser(
        "export", help="write the configuration in force as TOML files into DIR"
    )
    export.add_argument("directory", metavar="DIR")


def config(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "export":
        return export(settings, Path(args.directory))
    return apply(settings, Path(args.directory), args.apply, args.effective_from)


def apply(settings: Settings, directory: Path, write: bool, since: datetime | None) -> int:
    from gateway.configuration.service import Configuration
    from gateway.events.actor import current_actor
    from gateway.kernel.errors import DomainError
    from gateway.ledger.service import utcnow
    from partners.config.coalition import build_coalition, read_directory

    files = read_directory(directory)
    build_coalition(files)  # a folder that does not load: ConfigError, exit 2 (cli.main)
    by = current_actor.get() or "operator:cli"

    async def work(engine: AsyncEngine) -> Applied | DomainError:
        configuration = Configuration(engine, utcnow)
        try:
            return await configuration.apply(files, by, dry_run=not write, effective_from=since)
        except DomainError as error:
            return error

    applied = with_database(settings, work)
    if isinstance(applied, DomainError):
        print(f"error: {applied.code.value}: {applied.message}", file=sys.stderr)
        return 1
    for line in applied.lines:
        print(f"  {line}")
    if applied.plan.empty:
        print("The database holds this configuration already: nothing to change.")
    elif applied.change is None:
        print(f"Dry run: {len(applied.lines)} difference(s). Run again with --apply to apply.")
    else:
        print(f"Applied as change {applied.change}; running processes follow within seconds.")
    return 0


def export(settings: Settings, directory: Path) -> int:
    from gateway.configuration.documents import COALITION, to_toml
    from gateway.configuration.service import Configuration
    from gateway.ledger.service import utcnow

    async def work(engine: AsyncEngine) -> tuple[int, dict[str, str]]:
        configuration = Configuration(engine, utcnow)
        await configuration.open(settings.config_dir)
        files = configuration.files()
        texts = {"coalition": to_toml(files.coalition)}
        texts.update({name: to_toml(table) for name, table in files.partners.items()})
        return configuration.state.version, texts

    directory.mkdir(parents=True, exist_ok=True)
    version, texts = with_database(settings, work)
    strangers = sorted(file.name for file in directory.glob("*.toml") if file.stem not in texts)
    if strangers:
        print(
            f"error: {directory} holds other TOML files ({', '.join(strangers)}), which "
            "`config apply` would read as partners: export into an empty folder",
            file=sys.stderr,
        )
        return 2
    header = (
        f"# Exported from the gateway's database (configuration change {version}).\n"
        "# Edit, then `coalition config apply DIR` shows the difference (--apply applies it).\n"
    )
    for name, text in texts.items():
        (directory / f"{name}.toml").write_text(header + text, encoding="utf-8")
    partners = len(texts) - (1 if COALITION in texts else 0)
    print(f"Wrote coalition.toml and {partners} partner file(s) to {directory}.")
    return 0
