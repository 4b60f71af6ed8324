"""Fixtures: a gateway per test on SQLite and on PostgreSQL, reached over HTTP.

PostgreSQL is the production database. In CI (``CI=true``) an unreachable server fails
the run; elsewhere the PostgreSQL half is skipped and the summary says so.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from gateway.api import jobs as wiring
from gateway.api.app import create_app
from gateway.api.settings import Settings
from gateway.jobs.runner import JobRunner
from gateway.kernel.database import create_engine, migrate
from gateway.ledger.audit import audit
from gateway.ledger.service import LedgerService
from partners.config.coalition import DEMO_DIRECTORY

# The sign-in fixtures (`brands`, `sso`, `sso_programme`) are registered here, once: a module
# importing them would start its own session's providers and stop them all at the very end.
pytest_plugins = ["tests.sso"]

PARTNER_SCOPES = (
    "members:enrol members:read points:earn points:redeem points:reverse rewards:manage "
    "webhooks:manage"
)
BASE_PG_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
# Under pytest-xdist each worker (gw0, gw1, ...) has a database of its own: `test_gw0`, ...
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
PG_URL = f"{BASE_PG_URL}_{WORKER}" if WORKER else BASE_PG_URL
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def core_text(file: Path) -> str:
    """A demo configuration file without the coalition-wide programme (tiers, challenges):
    the suite's default coalition, so that a test of the core is not paid a challenge bonus
    or a tier multiplier it did not ask for. Their own tests use the full demo."""
    text = file.read_text()
    if file.name == "coalition.toml":
        starts = [i for i in (text.find("\n[[tiers]]"), text.find("\n[[challenges]]")) if i >= 0]
        text = text[: min(starts, default=len(text))] + "\n"
    return text


def _core_directory() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="coalition-core-"))
    atexit.register(shutil.rmtree, directory, True)
    for file in DEMO_DIRECTORY.glob("*.toml"):
        (directory / file.name).write_text(core_text(file))
    return directory


CORE_DIRECTORY = _core_directory()

_pg_state: dict[str, str | None] = {}


def _plain_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _create_database(url: str) -> None:
    """Create a worker's database on the server of ``url`` when it does not exist yet."""
    parts = urlsplit(_plain_dsn(url))
    name = parts.path.lstrip("/")
    admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")), timeout=5)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            quoted = '"' + name.replace('"', '""') + '"'
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await admin.execute(f"CREATE DATABASE {quoted}")
    finally:
        await admin.close()


async def _reset_postgres() -> None:
    if WORKER:
        await _create_database(PG_URL)
    connection = await asyncpg.connect(_plain_dsn(PG_URL), timeout=5)
    try:
        await connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await connection.close()


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used, or None; the schema is reset once per run."""
    if "reason" not in _pg_state:
        try:
            asyncio.run(_reset_postgres())
            _pg_state["reason"] = None
        except (TimeoutError, OSError, asyncpg.PostgresError) as error:
            _pg_state["reason"] = f"PostgreSQL at {PG_URL} is unreachable: {error!r}"
    return _pg_state["reason"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    reason = _pg_state.get("reason")
    if reason:
        terminalreporter.write_sep("!", "PostgreSQL tests were SKIPPED", yellow=True)
        terminalreporter.write_line(reason)
        terminalreporter.write_line("Set TEST_DATABASE_URL or start PostgreSQL to run them.")


_sqlite_template: list[Path] = []


def migrated_sqlite(path: Path) -> str:
    """The URL of a SQLite database at ``path`` with the schema at head: a copy of one this
    worker migrated once (migrating an empty database takes longer than most tests)."""
    if not _sqlite_template:
        template = Path(tempfile.mkdtemp(prefix="coalition-template-")) / "ledger.db"
        atexit.register(shutil.rmtree, template.parent, True)

        async def build() -> None:
            engine = create_engine(f"sqlite+aiosqlite:///{template}")
            try:
                await migrate(engine)
            finally:
                await engine.dispose()  # the last connection's close folds the WAL in

        asyncio.run(build())
        _sqlite_template.append(template)
    shutil.copyfile(_sqlite_template[0], path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return migrated_sqlite(tmp_path / "ledger.db")
    return postgres_url()


@pytest.fixture
def pg_url() -> str:
    return postgres_url()


def postgres_url() -> str:
    reason = postgres_unavailable()
    if reason:
        if IN_CI:
            pytest.fail(f"CI requires PostgreSQL: {reason}", pytrace=False)
        pytest.skip(reason)
    return PG_URL


USED_SEQUENCES = """
    SELECT DISTINCT owner.relname FROM pg_sequences s
    JOIN pg_class seq ON seq.relname = s.sequencename
        AND seq.relnamespace = 'public'::regnamespace
    JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = seq.oid
        AND d.deptype IN ('a', 'i')
    JOIN pg_class owner ON owner.oid = d.refobjid
    WHERE s.schemaname = 'public' AND s.last_value IS NOT NULL
"""


async def _truncate(url: str) -> None:
    """Empty every table of the gateway's (not alembic's), and restart their ids: only the
    ones an earlier test wrote to, as truncating fifty tables costs more than most tests."""
    connection = await asyncpg.connect(_plain_dsn(url))
    try:
        tables = await connection.fetchval(
            "SELECT array_agg(relname::text) FROM pg_class WHERE relkind = 'r' "
            "AND relnamespace = 'public'::regnamespace AND relname <> 'alembic_version'"
        )
        if not tables:
            return
        quoted = ['"' + table.replace('"', '""') + '"' for table in tables]
        filled = " UNION ALL ".join(
            f"SELECT {i} WHERE EXISTS (SELECT 1 FROM {name})" for i, name in enumerate(quoted)
        )
        used = {tables[row[0]] for row in await connection.fetch(filled)}
        used |= {row[0] for row in await connection.fetch(USED_SEQUENCES)}
        if used:
            names = ", ".join(q for t, q in zip(tables, quoted, strict=True) if t in used)
            await connection.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()


@dataclass
class Clock:
    """A clock the tests move by hand."""

    now: datetime = field(default_factory=lambda: datetime(2026, 6, 1, 12, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Gateway:
    app: Starlette
    client: httpx.AsyncClient
    clock: Clock

    @property
    def service(self) -> LedgerService:
        service: LedgerService = self.app.state.service
        return service

    async def operator_token(self) -> str:
        """A fresh token of an operator client (tests move the clock, so never cached)."""
        token: str = await self.app.state.issuer.issue("test-operator", None, "operator")
        return token

    async def partner_token(self, partner: str, scopes: str = PARTNER_SCOPES) -> str:
        token: str = await self.app.state.issuer.issue(f"{partner}-test", partner, scopes)
        return token

    async def gql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        token: str | None = None,
        **expect: Any,
    ) -> dict[str, Any]:
        """POST a GraphQL request (as an operator unless a token is given); assert 200 and
        no errors unless told otherwise."""
        response = await self.client.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={
                "accept": "application/graphql-response+json",
                "authorization": f"Bearer {token or await self.operator_token()}",
            },
        )
        assert response.status_code == expect.get("status", 200), response.text
        body: dict[str, Any] = response.json()
        if not expect.get("errors", False):
            assert "errors" not in body, body
        return body

    async def audit(self) -> list[str]:
        return await audit(self.service.engine)

    async def settle_events(self) -> None:
        """Wait until every registered event consumer (badges...) applied every event
        committed so far (instead of sleeping; see JobRunner.settle): the server's runner,
        or, when the test gateway runs no jobs, one made for the call."""
        service = self.service
        runner = self.app.state.jobs or JobRunner(service.uow, wiring.consumers(service))
        async with asyncio.timeout(60):
            await runner.settle()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def gateway(database_url: str, clock: Clock) -> AsyncIterator[Gateway]:
    async for gateway in start_gateway(database_url, clock):
        yield gateway


async def start_gateway(
    database_url: str, clock: Callable[[], datetime], **settings: Any
) -> AsyncIterator[Gateway]:
    if database_url.startswith("postgresql"):
        await _truncate(database_url)
    settings.setdefault("public_url", "http://gateway")
    settings.setdefault("config_dir", str(CORE_DIRECTORY))
    # Jobs run when a test runs them: a background sweep firing mid-test would make the
    # test's outcome depend on timing.
    settings.setdefault("hold_sweep_seconds", 0)
    # Event consumers too (badges): a test that needs them runs them (``Gateway.settle``),
    # unless it asks for the background sweeps.
    settings.setdefault("jobs", settings["hold_sweep_seconds"] > 0)
    app = create_app(Settings(database_url=database_url, demo_data=False, **settings), clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            gateway = Gateway(app, client, clock)  # type: ignore[arg-type]
            yield gateway
            assert await gateway.audit() == []
