"""`coalition`: serve the gateway, migrate, check configuration, export the schema, audit,
manage OAuth clients and signing keys, close settlement periods and reconcile them."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import getpass
import ipaddress
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError

from gateway.api.settings import Settings, SettingsError
from gateway.auth.clients import ClientError
from gateway.events.actor import set_actor
from gateway.remote.operations import connect_pools
from partners.config.coalition import ConfigError, load_coalition

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from gateway.settlement.service import Period, SettlementService, Statement


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


def _serve(settings: Settings, args: argparse.Namespace) -> int:
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
    print(f"Coalition gateway: GraphiQL at {settings.public_url}/graphql")
    print(f"Database: {settings.database_url}")
    if warning is not None:
        print(warning, file=sys.stderr)
    for name in development:
        print(f"Sign in (development provider): {settings.public_url}/auth/login/{name}")
    options: dict[str, object] = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "access_log": not args.no_access_log,
        # Closes connections whose request headers come too slowly (HTTP_HEADER_TIMEOUT).
        "http": HeaderDeadlineProtocol,
    }
    HeaderDeadlineProtocol.header_timeout = settings.http_header_timeout
    if workers > 1:
        from gateway.api.pools import shared_development_pools
        from gateway.development.demo import DEMO_REMOTE_MEMBERS

        # Each worker process builds its own app from the same environment; a development
        # pool is served once, here, for all of them (one ledger, as a real partner keeps).
        with shared_development_pools(coalition, os.environ, DEMO_REMOTE_MEMBERS) as shared:
            for slug in shared:
                print(f"Development pool of {slug}: served once for the {workers} workers")
            uvicorn.run("gateway.api.app:create_app", factory=True, workers=workers, **options)  # type: ignore[arg-type]
    else:
        uvicorn.run(create_app(settings), **options)  # type: ignore[arg-type]
    return 0


def _migrate(settings: Settings) -> int:
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


def _check_config(settings: Settings, directory: str | None) -> int:
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
    return 0


def _export_schema(path: str) -> int:
    from gateway.api.graphql.schema import schema

    text = schema.as_str() + "\n"
    if path == "-":
        sys.stdout.write(text)
    else:
        Path(path).write_text(text, encoding="utf-8")
        print(f"Wrote {path}")
    return 0


def _audit(settings: Settings) -> int:
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


def _expire_holds(settings: Settings) -> int:
    from gateway.earning.observer import observe_programme
    from gateway.holds.service import HoldService
    from gateway.kernel.database import create_engine, migrate
    from gateway.ledger.service import LedgerService

    async def run() -> int:
        engine = create_engine(settings.database_url)
        try:
            await migrate(engine)
            service = observe_programme(LedgerService(engine, load_coalition(settings.config_dir)))
            await service.start()
            return await HoldService(service).expire_due(limit=10**6)
        finally:
            await engine.dispose()

    released = asyncio.run(run())
    print(f"Released {released} expired hold(s).")
    return 0


def _jobs(settings: Settings) -> int:
    """Run the job runner (consumers, sweeps, remote retries) until SIGTERM or Ctrl-C."""
    import signal

    from gateway.api import jobs as wiring
    from gateway.api.pools import remote_pools
    from gateway.kernel.database import create_engine, migrate
    from gateway.ledger.service import LedgerService

    coalition = load_coalition(settings.config_dir)
    # A development pool lives inside the gateway process: its own runner resumes it.
    reachable = sorted(s for s, p in coalition.partners.items() if p.pool.base_url is not None)

    async def run() -> None:
        pools, _ = remote_pools(coalition, production=settings.production)
        engine = create_engine(settings.database_url)
        service = LedgerService(engine, coalition)
        remote = connect_pools(service, pools)
        try:
            await migrate(engine)
            await service.start()
            runner = wiring.runner(service, settings, reachable)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            names = [c.name for c in runner.consumers] + [s.name for s in runner.sweeps]
            print(f"Jobs running: {', '.join(names) or 'none'}", flush=True)
            await runner.run(stop)
            print("Jobs stopped.", flush=True)
        finally:
            await remote.aclose()
            await engine.dispose()

    asyncio.run(run())
    return 0


def _remote(settings: Settings, args: argparse.Namespace) -> int:
    """Retry pending remote operations that are due, or list operations."""
    from gateway.api.pools import remote_pools
    from gateway.earning.observer import observe_programme
    from gateway.kernel.database import create_engine, migrate
    from gateway.ledger.service import LedgerService
    from gateway.remote.operations import PENDING, operations_summary

    coalition = load_coalition(settings.config_dir)
    development = sorted(s for s, p in coalition.partners.items() if p.pool.development)
    reachable = sorted(s for s, p in coalition.partners.items() if p.pool.base_url is not None)

    async def run() -> int:
        pools, _ = remote_pools(coalition, production=settings.production)
        engine = create_engine(settings.database_url)
        service = observe_programme(LedgerService(engine, coalition))
        remote = connect_pools(service, pools)
        try:
            await migrate(engine)
            await service.start()
            if args.action == "list":
                found = await remote.operations(args.status, limit=args.limit)
                for line in operations_summary(found):
                    print(line)
                print(f"{len(found)} operation(s).")
                return 0
            if development:
                print(
                    f"Skipping {', '.join(development)}: a development pool is served inside "
                    "the gateway process, whose own job resumes its operations."
                )
            counts = await remote.resume_due(limit=args.limit, partners=reachable)
            print(", ".join(f"{count} {status}" for status, count in counts.items()))
            left = await remote.operations(PENDING, limit=1, partners=reachable)
            return 0 if not left else 3
        finally:
            await remote.aclose()
            await engine.dispose()

    return asyncio.run(run())


JOBS = {
    # command words -> what the job does; each is safe to repeat or to run alongside servers
    ("programme", "mature"): "move pending points whose return window ended into the wallets",
    ("tiers", "review"): "store due tier reviews and downgrades",
    ("challenges", "evaluate"): "award the badges of the last 40 days' earns not yet awarded",
}


def _job(settings: Settings, words: tuple[str, str]) -> int:
    """One of the periodic jobs, once, now (safe to run alongside the servers)."""
    from gateway.challenges.service import ChallengeService
    from gateway.earning.observer import observe_programme
    from gateway.earning.service import EarningService
    from gateway.expiry.service import ExpiryService
    from gateway.kernel.database import create_engine, migrate
    from gateway.ledger.service import LedgerService
    from gateway.tiers.service import TierService

    async def run() -> str:
        engine = create_engine(settings.database_url)
        try:
            await migrate(engine)
            service = observe_programme(LedgerService(engine, load_coalition(settings.config_dir)))
            await service.start()
            if words == ("programme", "mature"):
                matured = await EarningService(service).mature_due(limit=10**6)
                return f"Matured {matured} purchase(s)."
            if words == ("expire", "points"):
                expiry, total, batch = ExpiryService(service), 0, 10_000
                while (posted := await expiry.expire_due(limit=batch)) > 0:
                    total += posted
                    if posted < batch:
                        break
                return f"Posted {total} expir{'y' if total == 1 else 'ies'} to breakage."
            if words == ("tiers", "review"):
                tiers, total, changed = TierService(service), 0, 1
                while changed:
                    changed = await tiers.review_due()
                    total += changed
                return f"Reviewed {total} member(s) whose tier was due."
            if words == ("challenges", "evaluate"):
                since = service.clock() - timedelta(days=40)
                awarded = await ChallengeService(service).evaluate_all(since)
                return f"Awarded {awarded} badge(s)."
            raise AssertionError(words)
        finally:
            await engine.dispose()

    print(asyncio.run(run()))
    return 0


T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The database could not be reached or used; the message is for the operator."""


def _with_database(settings: Settings, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
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


def _print_secret(client_id: str, secret: str) -> None:
    print(f"client_id:     {client_id}")
    print(f"client_secret: {secret}")
    print("Store the secret now: it will not be shown again.")


def _client_create(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.auth.clients import create_client
    from gateway.ledger.service import utcnow

    partner: str | None = None if args.operator else args.partner
    known = None
    if partner is not None:
        known = list(load_coalition(settings.config_dir).partners)
    scopes = None if args.scopes is None else args.scopes.split()

    async def work(engine: AsyncEngine) -> tuple[str, str]:
        return await create_client(
            engine, partner, scopes, args.client_id, now=utcnow(), known_partners=known
        )

    client_id, secret = _with_database(settings, work)
    print(f"Created {'operator' if partner is None else partner} client {client_id}.")
    _print_secret(client_id, secret)
    return 0


def _client_rotate(settings: Settings, client_id: str) -> int:
    from gateway.auth.clients import rotate_secret
    from gateway.ledger.service import utcnow

    secret = _with_database(settings, lambda engine: rotate_secret(engine, client_id, utcnow()))
    print(f"Rotated the secret of {client_id}; the old secret no longer works.")
    _print_secret(client_id, secret)
    return 0


def _client_disable(settings: Settings, client_id: str) -> int:
    from gateway.auth.clients import disable_client
    from gateway.ledger.service import utcnow

    record = _with_database(settings, lambda engine: disable_client(engine, client_id, utcnow()))
    print(
        f"Disabled {client_id} (since {record.disabled_at:%Y-%m-%d %H:%M:%S %Z}). Tokens already "
        "issued stay valid until they expire."
    )
    return 0


def _client_list(settings: Settings) -> int:
    from gateway.auth.clients import list_clients

    records = _with_database(settings, list_clients)
    if not records:
        print("No clients.")
    for record in records:
        status = "disabled" if record.disabled_at else "active"
        owner = "operator" if record.partner is None else f"partner {record.partner}"
        print(f"{record.client_id}  {owner}  {status}  scopes: {' '.join(sorted(record.scopes))}")
    return 0


def _keys(settings: Settings, action: str) -> int:
    from gateway.auth.keys import KeyStore, SigningKeyInfo
    from gateway.ledger.service import utcnow

    async def work(engine: AsyncEngine) -> tuple[str | None, list[SigningKeyInfo]]:
        store = KeyStore(engine, utcnow, settings.token_lifetime)
        kid = await store.rotate() if action == "rotate" else None
        return kid, await store.describe()

    kid, keys = _with_database(settings, work)
    if kid is not None:
        print(f"New signing key {kid}; running gateways sign with it within 30 s.")
    now = utcnow()
    for key in keys:
        if key.current:
            status = "current"
        elif key.published_until is None:
            status = "unretired"
        elif key.published_until > now:
            status = f"retired, published until {key.published_until:%Y-%m-%d %H:%M:%S %Z}"
        else:
            status = "retired, unpublished"
        print(f"{key.kid}  created {key.created_at:%Y-%m-%d %H:%M:%S %Z}  {status}")
    if not keys:
        print("No signing keys yet: the gateway creates one when it starts.")
    return 0


def _client(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "create":
        if args.operator and args.scopes is not None:
            raise ClientError("--scopes is for partner clients: an operator client has 'operator'")
        return _client_create(settings, args)
    if args.action == "rotate":
        return _client_rotate(settings, args.client_id)
    if args.action == "disable":
        return _client_disable(settings, args.client_id)
    return _client_list(settings)


def _period_end(text: str) -> datetime:
    """``--period-end``: an ISO 8601 moment with a time zone (``Z`` or an offset)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date and time: {text!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone, e.g. {text}Z")
    return moment


def _settlement_service(engine: AsyncEngine, settings: Settings) -> SettlementService:
    from gateway.earning.observer import observe_programme
    from gateway.ledger.service import LedgerService
    from gateway.settlement.service import SettlementService

    return SettlementService(
        observe_programme(LedgerService(engine, load_coalition(settings.config_dir)))
    )


def _print_statements(found: list[Statement], currency: str) -> None:
    print(f"  {'partner':<12} {'payable':>16} {'receivable':>16} {'fees':>14} {'net':>16}")
    for s in found:
        print(
            f"  {s.partner:<12} {s.gross_payable:>16} {s.gross_receivable:>16} {s.fees:>14} "
            f"{s.net:>16}"
        )
    print(f"  (amounts in {currency}; net = receivable - payable - fees)")


def _settlement_close(settings: Settings, end: datetime, by: str) -> int:
    async def work(engine: AsyncEngine) -> tuple[Period, list[Statement]]:
        service = _settlement_service(engine, settings)
        period = await service.close(end, by)
        return period, await service.statements(period.id)

    period, found = _with_database(settings, work)
    since = f"from {period.opens_at.isoformat()} " if period.opens_at else ""
    if period.replayed:
        print(
            f"Period {period.id} ending {period.closes_at.isoformat()} was closed already "
            f"(at {period.closed_at.isoformat()} by {period.closed_by}): nothing changed."
        )
    else:
        print(
            f"Closed period {period.id}: obligations {since}until {period.closes_at.isoformat()}"
            f" (exclusive), {period.obligation_count} with the operator's fees."
        )
    _print_statements(found, period.currency)
    return 0


def _settlement_export(
    settings: Settings, period_id: int, partner: str | None, output: str | None
) -> int:
    """Streams the CSV to stdout, or to ``output`` through a ``.part`` file renamed once
    complete (so a failed export leaves no half file)."""
    target = Path(output) if output else None
    partial = target.with_name(target.name + ".part") if target else None

    async def work(engine: AsyncEngine, stream: TextIO) -> str | None:
        service = _settlement_service(engine, settings)
        period = await service.period(period_id)
        if period is None:
            return f"no settlement period {period_id}"
        if partner is not None and await service.statement(period_id, partner) is None:
            return f"period {period_id} has no statement for {partner!r}"
        async for line in service.csv_lines(period, partner):
            stream.write(line)
        return None

    opened = (
        partial.open("w", encoding="utf-8", newline="")
        if partial
        else contextlib.nullcontext(sys.stdout)
    )
    with opened as stream:
        try:
            problem = _with_database(settings, lambda engine: work(engine, stream))
        except BaseException:
            if partial:
                partial.unlink(missing_ok=True)
            raise
    if problem is not None:
        if partial:
            partial.unlink(missing_ok=True)
        print(f"error: {problem}", file=sys.stderr)
        return 1
    if target and partial:
        partial.replace(target)
        print(f"Wrote {target}", file=sys.stderr)
    return 0


def _settlement_list(settings: Settings) -> int:
    periods = _with_database(
        settings, lambda engine: _settlement_service(engine, settings).periods()
    )
    if not periods:
        print("No settlement period has been closed.")
    for period in periods:
        since = period.opens_at.isoformat() if period.opens_at else "the start"
        print(
            f"{period.id}  [{since}, {period.closes_at.isoformat()})  "
            f"{period.obligation_count} obligation(s)  closed {period.closed_at.isoformat()} "
            f"by {period.closed_by}"
        )
    return 0


def _settlement(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.settlement.service import SettlementError

    try:
        if args.action == "close":
            return _settlement_close(settings, args.period_end, args.by)
        if args.action == "export":
            return _settlement_export(settings, args.period_id, args.partner, args.output)
        return _settlement_list(settings)
    except SettlementError as error:
        print(f"error: {error.code.value}: {error.message}", file=sys.stderr)
        return 1


def _reconcile(settings: Settings) -> int:
    from gateway.settlement.service import report

    findings = _with_database(
        settings, lambda engine: _settlement_service(engine, settings).reconcile()
    )
    print(report(findings))
    return 1 if findings else 0


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
    for (group, action), text in JOBS.items():
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
        type=_period_end,
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
            return _serve(settings, args)
        if args.command == "migrate":
            return _migrate(settings)
        if args.command == "check-config":
            return _check_config(settings, args.directory)
        if args.command == "export-schema":
            return _export_schema(args.path)
        if args.command == "client":
            return _client(settings, args)
        if args.command == "keys":
            return _keys(settings, args.action)
        if args.command == "jobs":
            return _jobs(settings)
        if args.command == "expire-holds":
            return _expire_holds(settings)
        if args.command == "expire-points":
            return _job(settings, ("expire", "points"))
        if args.command == "remote":
            return _remote(settings, args)
        if (args.command, getattr(args, "action", None)) in JOBS:
            return _job(settings, (args.command, args.action))
        if args.command == "settlement":
            return _settlement(settings, args)
        if args.command == "reconcile":
            return _reconcile(settings)
        return _audit(settings)
    except (ConfigError, SettingsError, ClientError, LookupError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except DatabaseUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
