"""`coalition`: serve the gateway, migrate, check configuration, export the schema, audit."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from partners.config import ConfigError, load_coalition

from .settings import Settings, SettingsError


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app

    workers = args.workers or settings.workers
    if workers > 1 and settings.is_sqlite:
        raise SettingsError("more than one worker needs PostgreSQL: SQLite allows one writer")
    print(f"Coalition gateway: GraphiQL at http://{args.host}:{args.port}/graphql")
    print(f"Database: {settings.database_url}")
    options: dict[str, object] = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "access_log": not args.no_access_log,
    }
    if workers > 1:
        # Each worker process builds its own app from the same environment.
        uvicorn.run("gateway.app:create_app", factory=True, workers=workers, **options)  # type: ignore[arg-type]
    else:
        uvicorn.run(create_app(settings), **options)  # type: ignore[arg-type]
    return 0


def _migrate(settings: Settings) -> int:
    from .database import create_engine, migrate

    async def run() -> None:
        engine = create_engine(settings.database_url)
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    print(f"Migrated {settings.database_url} to the latest schema.")
    return 0


def _check_config(settings: Settings, directory: str | None) -> int:
    coalition = load_coalition(directory or settings.config_dir)
    print(f"{coalition.name}: settlement in {coalition.settlement_currency}")
    for partner in coalition.partners.values():
        print(
            f"  {partner.slug}: {partner.name}, {partner.currency_name} ({partner.currency_code}) "
            f"worth {partner.point_value} {coalition.settlement_currency}, "
            f"{len(partner.conversions)} conversion rule(s)"
        )
    return 0


def _export_schema(path: str) -> int:
    from .graphql.schema import schema

    text = schema.as_str() + "\n"
    if path == "-":
        sys.stdout.write(text)
    else:
        Path(path).write_text(text, encoding="utf-8")
        print(f"Wrote {path}")
    return 0


def _audit(settings: Settings) -> int:
    from .audit import audit
    from .database import create_engine

    async def run() -> list[str]:
        engine = create_engine(settings.database_url)
        try:
            return await audit(engine)
        finally:
            await engine.dispose()

    problems = asyncio.run(run())
    for problem in problems:
        print(problem)
    print("The ledger is sound." if not problems else f"{len(problems)} problem(s) found.")
    return 1 if problems else 0


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
    args = parser.parse_args(argv)
    level = getattr(args, "log_level", "info").upper()
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
        if args.command == "serve":
            args.host = args.host or settings.host
            args.port = args.port or settings.port
            load_coalition(settings.config_dir)  # refuse to start on bad configuration
            return _serve(settings, args)
        if args.command == "migrate":
            return _migrate(settings)
        if args.command == "check-config":
            return _check_config(settings, args.directory)
        if args.command == "export-schema":
            return _export_schema(args.path)
        return _audit(settings)
    except (ConfigError, SettingsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
