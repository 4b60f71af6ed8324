"""`coalition serve`, `migrate`, `check-config`, `export-schema` and `audit`: the server,
its schema and its configuration."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from gateway.api.settings import Settings, SettingsError
from partners.config.coalition import load_coalition


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` reaches this machine only: ``localhost``, 127.0.0.0/8,
    ``::1``. Anything else (``0.0.0.0``, ``::``, an interface's address, a name) is a
    network."""
    name = host.strip().removeprefix("[").removesuffix("]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_exposure(
    host: str,
    development: list[str],
    demo_clients: bool,
    environ: Mapping[str, str] = os.environ,
) -> str | None:
    """Refuse to serve demo-only ways in on a network unless the operator chose it.

    The bundled development providers sign anyone in as any demo person, an operator
    included, and the demo clients' secrets are published in the README: on a host other
    than loopback they are open doors. Serving them there needs ``COALITION_ENV=development``
    set explicitly in the environment (the default is not a choice); then the returned
    warning is printed. Raises ``SettingsError`` otherwise; None when nothing is exposed.
    """
    exposed: list[str] = []
    if development:
        exposed.append(f"the development sign-in provider(s) of {', '.join(development)}")
    if demo_clients:
        exposed.append("the demo OAuth clients (public secrets, an operator client included)")
    if not exposed or is_loopback(host):
        return None
    what = " and ".join(exposed)
    if environ.get("COALITION_ENV", "").strip().lower() != "development":
        raise SettingsError(
            f"refusing to serve {what} on {host!r}, which is not loopback: anyone who can reach "
            "it could sign in as any demo person or operator. Listen on 127.0.0.1, ::1 or "
            "localhost; or configure real providers (issuer = ...) and "
            "COALITION_DEMO_DATA=false; or set COALITION_ENV=development to accept this "
            "knowingly"
        )
    return (
        f"warning: serving {what} on {host!r}, reachable from the network "
        "(COALITION_ENV=development): anyone who can reach it can sign in as any demo "
        "person or operator"
    )


LOG_LEVEL = "COALITION_LOG_LEVEL"  # `serve --log-level`, for its worker processes


def serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.api.app import create_app
    from gateway.api.slow_clients import HeaderDeadlineProtocol

    workers = args.workers or settings.workers
    if workers > 1 and settings.is_sqlite:
        raise SettingsError("more than one worker needs PostgreSQL: SQLite allows one writer")
    coalition = load_coalition(settings.config_dir)
    development = [
        p.slug for p in coalition.partners.values() if p.sign_in and p.sign_in.development
    ]
    if coalition.sign_in and coalition.sign_in.development:
        development.append("coalition")
    if workers > 1 and development:
        raise SettingsError(
            "the bundled development sign-in providers keep their state in one process: "
            "run one worker, or configure real providers (issuer = ...)"
        )
    warning = None
    if not settings.production:  # production has neither: create_app refuses the former
        warning = check_exposure(args.host, development, settings.demo_data)
    if "COALITION_PUBLIC_URL" not in os.environ:
        # Redirects back from sign-in must reach this server as started.
        public_url = f"http://{args.host}:{args.port}"
        os.environ["COALITION_PUBLIC_URL"] = public_url
        settings = dataclasses.replace(settings, public_url=public_url)
    ide = "GraphiQL" if settings.graphiql else "GraphQL (GraphiQL off)"
    print(f"Coalition gateway: {ide} at {settings.public_url}/graphql")
    print(f"Database: {settings.database_url}")
    if warning is not None:
        print(warning, file=sys.stderr)
    for name in development:
        print(f"Sign in (development provider): {settings.public_url}/auth/login/{name}")
    from gateway.api.observability.logs import configure_logging

    # Uvicorn's records go through our renderer (no log_config of its own); its access log
    # only when ours is off, not to log each request twice. Worker processes build their
    # app from the environment: the level and --no-access-log reach them through it.
    os.environ[LOG_LEVEL] = args.log_level.upper()
    if args.no_access_log:
        os.environ["COALITION_REQUEST_LOG"] = "false"
        settings = dataclasses.replace(settings, request_log=False)
    configure_logging(settings.log_format, args.log_level.upper())
    options: dict[str, object] = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "log_config": None,
        "access_log": not (args.no_access_log or settings.request_log),
        # Requests in flight get this long to finish on SIGTERM; then they are cut off.
        "timeout_graceful_shutdown": settings.shutdown_timeout or None,
        # Closes connections whose request headers come too slowly (HTTP_HEADER_TIMEOUT).
        "http": HeaderDeadlineProtocol,
    }
    HeaderDeadlineProtocol.header_timeout = settings.http_header_timeout
    if workers > 1:
        from gateway.api.pools import shared_development_pools
        from gateway.development.demo import DEMO_REMOTE_MEMBERS

        # Each worker process builds its own app from the same environment; a development
        # pool is served once, here, for all of them (one ledger, as a real partner keeps).
        with (
            shared_development_pools(coalition, os.environ, DEMO_REMOTE_MEMBERS) as shared,
            shared_metrics(os.environ),
        ):
            for slug in shared:
                print(f"Development pool of {slug}: served once for the {workers} workers")
            uvicorn.run("gateway.api.app:create_app", factory=True, workers=workers, **options)  # type: ignore[arg-type]
    else:
        uvicorn.run(create_app(settings), **options)  # type: ignore[arg-type]
    return 0


@contextmanager
def shared_metrics(environ: MutableMapping[str, str]) -> Iterator[None]:
    """The workers' metrics in files of a directory they share, so that /metrics shows all
    of them (prometheus_client's multiprocess mode); a directory the operator chose in
    PROMETHEUS_MULTIPROC_DIR is used as it is (and must be emptied between runs)."""
    if environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="coalition-metrics-") as directory:
        environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        try:
            yield
        finally:
            environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


def migrate_schema(settings: Settings) -> int:
    from gateway.kernel.database import create_engine, migrate

    async def run() -> None:
        engine = create_engine(settings.database_url)
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    print(f"Migrated {settings.database_url} to the latest schema.")
    return 0


def check_config(settings: Settings, directory: str | None) -> int:
    """Load a folder of configuration and say what it holds; exit 1 when its conversion
    rules allow arbitrage from now on (as `config apply` would refuse them)."""
    from partners.config.arbitrage import find_arbitrage

    coalition = load_coalition(directory or settings.config_dir)
    print(f"{coalition.name}: settlement in {coalition.settlement_currency}")
    now = datetime.now(UTC)
    for partner in coalition.partners.values():
        rules = partner.conversions
        in_force = sum(1 for rule in rules if rule.enabled and rule.in_force_at(now))
        later = sum(1 for rule in rules if now < rule.effective_from)
        print(
            f"  {partner.slug}: {partner.name}, {partner.currency_name} ({partner.currency_code}) "
            f"worth {partner.point_value} {coalition.settlement_currency}, "
            f"{len(rules)} conversion rule(s): {in_force} in force now, {later} starting later"
        )
    found = find_arbitrage((r for p in coalition.partners.values() for r in p.conversions), now)
    if found is not None:
        print(f"error: RATES_ALLOW_ARBITRAGE: {found}", file=sys.stderr)
        return 1
    return 0


def export_schema(path: str) -> int:
    from gateway.api.graphql.schema import schema

    text = schema.as_str() + "\n"
    if path == "-":
        sys.stdout.write(text)
    else:
        Path(path).write_text(text, encoding="utf-8")
        print(f"Wrote {path}")
    return 0


def audit_ledger(settings: Settings) -> int:
    from gateway.kernel.database import create_engine
    from gateway.ledger.audit import audit

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
