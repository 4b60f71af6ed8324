"""`coalition`: serve the gateway, migrate, check configuration, export the schema, audit,
manage OAuth clients, signing keys and the master key sealing them, close settlement
periods and reconcile them, import files of earns, answer members' data requests (export,
erase)."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from typing import Any

from gateway.api import (
    cli_clients,
    cli_config,
    cli_imports,
    cli_jobs,
    cli_members,
    cli_secrets,
    cli_serve,
    cli_settlement,
)
from gateway.api.cli_database import DatabaseUnavailable, moment
from gateway.api.observability.logs import configure_logging
from gateway.api.settings import Settings, SettingsError
from gateway.auth.clients import ClientError
from gateway.events.actor import set_actor
from gateway.kernel.sealing import SealError
from partners.config.coalition import ConfigError, load_coalition


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coalition", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway (migrates first)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--no-access-log", action="store_true")
    serve.add_argument("--workers", type=int, default=None, help="processes (PostgreSQL only)")
    commands.add_parser("migrate", help="apply database migrations")
    check = commands.add_parser("check-config", help="load and validate partner configuration")
    check.add_argument("directory", nargs="?")
    export = commands.add_parser("export-schema", help="write the GraphQL schema (SDL)")
    export.add_argument("path", nargs="?", default="schema.graphql")
    commands.add_parser("audit", help="check the ledger's invariants; exits 1 on a problem")
    commands.add_parser(
        "jobs",
        help="run the event consumers and the periodic sweeps until stopped (SIGTERM); any "
        "number may run at once, with each other and with servers",
    )
    commands.add_parser(
        "expire-holds", help="release every point-of-sale hold past its expiry (safe to repeat)"
    )
    commands.add_parser(
        "expire-points",
        help="post the points due to expire to each partner's breakage (safe to repeat, "
        "or to run on several hosts at once)",
    )
    groups: dict[str, Any] = {}
    for (group, action), text in cli_jobs.JOBS.items():
        if group not in groups:
            groups[group] = commands.add_parser(group, help=f"{group} jobs").add_subparsers(
                dest="action", required=True
            )
        groups[group].add_parser(action, help=text)
    remote = commands.add_parser(
        "remote", help="operations at partners whose points live in their own systems"
    )
    remote_commands = remote.add_subparsers(dest="action", required=True)
    resume = remote_commands.add_parser(
        "resume",
        help="retry pending operations that are due (safe to repeat or run concurrently); "
        "exits 3 while some are still pending",
    )
    resume.add_argument("--limit", type=int, default=1000)
    listing = remote_commands.add_parser("list", help="recent operations, newest first")
    listing.add_argument("--status", choices=["pending", "completed", "failed", "compensated"])
    listing.add_argument("--limit", type=int, default=50)
    client = commands.add_parser("client", help="manage OAuth clients of partner apps, operators")
    client_commands = client.add_subparsers(dest="action", required=True)
    create = client_commands.add_parser("create", help="create a client; prints its secret once")
    owner = create.add_mutually_exclusive_group(required=True)
    owner.add_argument("--partner", metavar="SLUG", help="a partner's app client")
    owner.add_argument("--operator", action="store_true", help="an operator client")
    create.add_argument("--scopes", help='space-separated, e.g. "points:earn points:redeem"')
    create.add_argument("--client-id", help="default: <partner or operator>-<random>")
    rotate = client_commands.add_parser("rotate", help="new secret; the old one stops at once")
    rotate.add_argument("client_id")
    disable = client_commands.add_parser("disable", help="refuse the client's credentials")
    disable.add_argument("client_id")
    client_commands.add_parser("list", help="list the clients")
    keys = commands.add_parser("keys", help="manage the gateway's token-signing keys")
    key_commands = keys.add_subparsers(dest="action", required=True)
    key_commands.add_parser("rotate", help="new signing key; the old stays published a while")
    key_commands.add_parser("list", help="list the signing keys")
    settle = commands.add_parser("settlement", help="close settlement periods, export statements")
    settle_commands = settle.add_subparsers(dest="action", required=True)
    close = settle_commands.add_parser(
        "close", help="close the period ending at --period-end (a retry changes nothing)"
    )
    close.add_argument(
        "--period-end",
        type=moment,
        required=True,
        metavar="MOMENT",
        help="the end (exclusive), with a time zone: 2026-12-01T00:00:00Z",
    )
    close.add_argument("--by", default=f"cli:{getpass.getuser()}", help="recorded as closed_by")
    export_statement = settle_commands.add_parser(
        "export", help="a closed period's statements as CSV"
    )
    export_statement.add_argument("period_id", type=int, metavar="PERIOD_ID")
    export_statement.add_argument("--partner", help="only this partner's statement")
    export_statement.add_argument("--output", help="write to this file (default: stdout)")
    settle_commands.add_parser("list", help="list the closed periods")
    commands.add_parser(
        "reconcile",
        help="prove the ledger and the settlement statements agree; exits 1 with a report",
    )
    cli_imports.add_parser(commands)
    cli_config.add_parser(commands)
    cli_secrets.add_parser(commands)
    cli_members.add_parser(commands)
    args = parser.parse_args(argv)
    level = getattr(args, "log_level", "info").upper()
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.command != "serve":  # a server's requests name their callers
        set_actor(f"operator:cli:{_user()}")  # the jobs name themselves "system:<job>"
    try:
        settings = Settings.from_env()
        if args.command == "serve":
            args.host = args.host or settings.host
            args.port = args.port or settings.port
            load_coalition(settings.config_dir)  # refuse to start on bad configuration
            return cli_serve.serve(settings, args)
        if args.command == "migrate":
            return cli_serve.migrate_schema(settings)
        if args.command == "check-config":
            return cli_serve.check_config(settings, args.directory)
        if args.command == "export-schema":
            return cli_serve.export_schema(args.path)
        if args.command == "client":
            return cli_clients.client(settings, args)
        if args.command == "keys":
            return cli_clients.keys(settings, args.action)
        if args.command == "secrets":
            return cli_secrets.secrets(settings, args)
        if args.command == "jobs":
            configure_logging(settings.log_format)  # a line per job run, as a server logs
            return cli_jobs.run_jobs(settings)
        if args.command == "expire-holds":
            return cli_jobs.expire_holds(settings)
        if args.command == "expire-points":
            return cli_jobs.run_job(settings, ("expire", "points"))
        if args.command == "remote":
            return cli_jobs.remote(settings, args)
        if (args.command, getattr(args, "action", None)) in cli_jobs.JOBS:
            return cli_jobs.run_job(settings, (args.command, args.action))
        if args.command == "settlement":
            return cli_settlement.settlement(settings, args)
        if args.command == "import":
            return cli_imports.import_earns(settings, args)
        if args.command == "config":
            return cli_config.config(settings, args)
        if args.command == "members":
            return cli_members.members(settings, args)
        if args.command == "reconcile":
            return cli_settlement.reconcile(settings)
        return cli_serve.audit_ledger(settings)
    except (ConfigError, SettingsError, ClientError, LookupError, SealError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except DatabaseUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
