"""Earn throughput and latency: the real gateway over HTTP against the same SQL sent directly.

Usage, from the repository root with PostgreSQL on 127.0.0.1:5432 (user postgres, trust)::

    .venv/bin/python -m bench.earn [--members 2000] [--requests 4000] [--warmup 200]
                                   [--concurrency 16] [--seed 1]

The database is ``coalition_bench``, created when missing and reset at the start of every
run (DROP SCHEMA public CASCADE; CREATE SCHEMA public). Point elsewhere with
``BENCH_DATABASE_URL=postgresql://user@host:port/name`` (``postgresql+asyncpg://`` works too).

What it does:

1. Starts the gateway (``.venv/bin/coalition serve --port <free> --no-access-log
   --log-level warning``, demo data off), waits for ``GET /healthz`` (it migrates at
   start-up), and enrols ``--members`` members at each of skyway, brewbar and freshmart
   through ``enrolMember`` (setup, not timed).
2. gateway spread: ``earnPoints`` over HTTP/1.1 keep-alive from ``--concurrency`` clients
   sharing one httpx client, each earn for a random member at a partner drawn uniformly.
   gateway hot: every earn at skyway, for members enrolled at skyway. Each scenario first
   runs ``--warmup`` earns that are not counted. The gateway is stopped after these two.
3. direct spread / direct hot: the same postings through an asyncpg pool of
   ``--concurrency`` connections, one transaction per earn with the statements the gateway
   sends for it (gateway/service.py ``earn``, gateway/repository.py), in the gateway's
   order: the idempotency SELECT on transfers, the member SELECT, the transfer INSERT ...
   ON CONFLICT DO NOTHING RETURNING id, the wallet upsert, the two-row entries INSERT.
   Their idempotency scope is ``bench-direct:<partner>``, never the gateway's
   ``earn:<partner>``, so the two can not collide.
4. Prints earns/s and the client-side p50/p99 latency of each scenario, the gateway/direct
   and hot/spread ratios, where the CPU went (in cores, from /proc) and how many new
   database sessions were opened, then a consistency check in SQL: every pool's entries
   sum to zero, every wallet balance equals the sum of its entries, and each earn posted
   exactly one transfer with two entries.

Exits 1 when any earn failed or the consistency check found a problem.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ctypes
import hashlib
import json
import math
import os
import random
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]  # ships no type information
import httpx

ROOT = Path(__file__).resolve().parent.parent
PARTNERS = ("skyway", "brewbar", "freshmart")
HOT_PARTNER = "skyway"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/coalition_bench"
DIRECT_SCOPE = "bench-direct"
HEALTH_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SHOWN_FAILURES = 20

T = TypeVar("T")

ENROL = """
mutation Enrol($input: EnrolMemberInput!) {
  enrolMember(input: $input) { member { id } userErrors { code message } }
}
"""
EARN = """
mutation Earn($input: EarnPointsInput!) {
  earnPoints(input: $input) {
    transfer { id points }
    wallet { balance }
    userErrors { code field message }
  }
}
"""

# What SQLAlchemy renders for gateway/repository.py with the asyncpg dialect.
SELECT_TRANSFER_BY_KEY = """
SELECT transfers.id, transfers.kind, transfers.member_id, transfers.partner,
       transfers.to_partner, transfers.points, transfers.received_points,
       transfers.purchase_amount, transfers.rate, transfers.fee, transfers.reason,
       transfers.reverses_id, transfers.idempotency_scope, transfers.idempotency_key,
       transfers.request_hash, transfers.created_at
FROM transfers
WHERE transfers.idempotency_scope = $1::VARCHAR AND transfers.idempotency_key = $2::VARCHAR
"""
SELECT_MEMBER = """
SELECT members.id, members.created_at FROM members WHERE members.id IN ($1::VARCHAR)
"""
CLAIM_TRANSFER = """
INSERT INTO transfers (kind, member_id, partner, points, purchase_amount, reason,
                       idempotency_scope, idempotency_key, request_hash, created_at)
VALUES ($1::VARCHAR, $2::VARCHAR, $3::VARCHAR, $4::BIGINT, $5::VARCHAR, $6::VARCHAR,
        $7::VARCHAR, $8::VARCHAR, $9::VARCHAR, $10::TIMESTAMP WITH TIME ZONE)
ON CONFLICT (idempotency_scope, idempotency_key) DO NOTHING RETURNING transfers.id
"""
CREDIT_WALLET = """
INSERT INTO accounts (pool, code, member_id, balance)
VALUES ($1::VARCHAR, $2::VARCHAR, $3::VARCHAR, $4::BIGINT)
ON CONFLICT (member_id, pool) WHERE member_id IS NOT NULL
DO UPDATE SET balance = (accounts.balance + excluded.balance)
RETURNING accounts.id, accounts.balance
"""
INSERT_ENTRIES = """
INSERT INTO entries (transfer_id, account_id, pool, member_id, amount, balance_after)
VALUES ($1::BIGINT, $2::BIGINT, $3::VARCHAR, $4::VARCHAR, $5::BIGINT, $6::BIGINT),
       ($7::BIGINT, $8::BIGINT, $9::VARCHAR, $10::VARCHAR, $11::BIGINT, $12::BIGINT)
"""
ISSUANCE_ACCOUNTS = "SELECT pool, id FROM accounts WHERE member_id IS NULL AND code = 'issuance'"

POOL_TOTALS = "SELECT pool, COUNT(*) AS entries, SUM(amount) AS total FROM entries GROUP BY pool"
WALLET_MISMATCHES = """
SELECT COUNT(*) AS wallets,
       COUNT(*) FILTER (WHERE balance <> posted) AS mismatched
FROM (
    SELECT a.id, a.balance, COALESCE(SUM(e.amount), 0) AS posted
    FROM accounts a LEFT JOIN entries e ON e.account_id = a.id
    WHERE a.member_id IS NOT NULL
    GROUP BY a.id, a.balance
) AS wallets
"""
POSTING_COUNTS = """
SELECT (SELECT COUNT(*) FROM transfers) AS transfers,
       (SELECT COUNT(*) FROM entries) AS entries,
       (SELECT COUNT(*) FROM (
            SELECT transfer_id FROM entries GROUP BY transfer_id HAVING COUNT(*) <> 2
        ) AS odd) AS odd_transfers
"""


# Configuration


@dataclass(frozen=True)
class Database:
    url: str  # postgresql:// for asyncpg
    admin_url: str  # the same server's `postgres` database
    gateway_url: str  # postgresql+asyncpg:// for the gateway's DATABASE_URL
    name: str

    @classmethod
    def from_env(cls) -> Database:
        raw = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
        scheme, _, rest = raw.partition("://")
        if scheme not in ("postgresql", "postgres", "postgresql+asyncpg"):
            raise SystemExit(f"BENCH_DATABASE_URL must be a PostgreSQL URL, got {raw!r}")
        url = f"postgresql://{rest}"
        parts = urlsplit(url)
        name = parts.path.lstrip("/")
        if not name:
            raise SystemExit(f"BENCH_DATABASE_URL names no database: {raw!r}")
        admin_url = urlunsplit(parts._replace(path="/postgres"))
        return cls(url, admin_url, f"postgresql+asyncpg://{rest}", name)


@dataclass(frozen=True)
class Options:
    members: int
    requests: int
    warmup: int
    concurrency: int
    seed: int


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.earn", description="Benchmark earnPoints: gateway vs direct SQL."
    )
    parser.add_argument("--members", type=int, default=2000, help="members per partner")
    parser.add_argument("--requests", type=int, default=4000, help="timed earns per scenario")
    parser.add_argument("--warmup", type=int, default=200, help="untimed earns first")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients")
    parser.add_argument("--seed", type=int, default=1, help="random seed")
    args = parser.parse_args(argv)
    if min(args.members, args.requests, args.concurrency) < 1 or args.warmup < 0:
        parser.error("--members, --requests and --concurrency must be positive")
    return Options(args.members, args.requests, args.warmup, args.concurrency, args.seed)


# Work items


@dataclass(frozen=True)
class Member:
    global_id: str
    uuid: str
    home: str


@dataclass(frozen=True)
class Enrolment:
    partner: str
    customer_id: str

    def __str__(self) -> str:
        return f"{self.partner}/{self.customer_id}"


@dataclass(frozen=True)
class Earn:
    partner: str
    member: Member
    points: int
    key: str

    def __str__(self) -> str:
        return f"{self.partner}/{self.key}"


@dataclass(frozen=True)
class Workload:
    warmup: list[Earn]
    timed: list[Earn]


def member_uuid(global_id: str) -> str:
    """The member id in the database: the node id inside the relay global id."""
    type_name, _, node_id = base64.b64decode(global_id).decode().partition(":")
    if type_name != "Member" or not node_id:
        raise ValueError(f"not a Member global id: {global_id!r}")
    return node_id


def draw_earns(
    rng: random.Random, members: dict[str, list[Member]], hot: bool, count: int, prefix: str
) -> list[Earn]:
    everyone = [member for partner in PARTNERS for member in members[partner]]
    earns = []
    for index in range(count):
        if hot:
            partner, member = HOT_PARTNER, rng.choice(members[HOT_PARTNER])
        else:
            partner, member = rng.choice(PARTNERS), rng.choice(everyone)
        earns.append(Earn(partner, member, rng.randint(1, 1000), f"{prefix}-{index:06d}"))
    return earns


def workload(
    rng: random.Random, members: dict[str, list[Member]], hot: bool, prefix: str, options: Options
) -> Workload:
    return Workload(
        warmup=draw_earns(rng, members, hot, options.warmup, f"{prefix}-warm"),
        timed=draw_earns(rng, members, hot, options.requests, prefix),
    )


# Measuring


Attempt = Callable[[T], Awaitable[str | None]]  # None when it worked, else what went wrong


async def drive(
    attempt: Attempt[T], items: Sequence[T], concurrency: int
) -> tuple[list[float], list[str]]:
    """Run ``attempt`` over ``items`` from ``concurrency`` workers: latencies and failures."""
    latencies: list[float] = []
    failures: list[str] = []
    pending = iter(items)

    async def worker() -> None:
        for item in pending:
            started = time.perf_counter()
            try:
                problem = await attempt(item)
            except Exception as error:
                problem = f"{type(error).__name__}: {error}"
            latencies.append(time.perf_counter() - started)
            if problem is not None:
                failures.append(f"{item}: {problem}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, failures


def machine_cpu_seconds() -> tuple[float, float]:
    """CPU seconds since boot, all cores: busy (not idle, iowait or steal), and stolen."""
    with open("/proc/stat") as stat:
        ticks = [int(value) for value in stat.readline().split()[1:9]]
    idle, iowait, steal = ticks[3], ticks[4], ticks[7]
    return (sum(ticks) - idle - iowait - steal) / CLOCK_TICKS, steal / CLOCK_TICKS


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


@dataclass(frozen=True)
class Sample:
    at: float
    machine: float
    steal: float
    bench: float
    gateway: float
    sessions: int


@dataclass(frozen=True)
class Usage:
    """Cores busy on average over a scenario, and database sessions opened during it."""

    machine: float
    steal: float
    gateway: float
    bench: float
    sessions: int

    @property
    def other(self) -> float:
        return max(self.machine - self.gateway - self.bench, 0.0)


class Monitor:
    """Samples CPU from /proc and the database's session counter (pg_stat_database)."""

    def __init__(self, connection: asyncpg.Connection, database: str) -> None:
        self.connection = connection
        self.database = database
        self.gateway_pid: int | None = None

    async def sample(self) -> Sample:
        sessions = await self.connection.fetchval(
            "SELECT sessions FROM pg_stat_database WHERE datname = $1", self.database
        )
        gateway = process_cpu_seconds(self.gateway_pid) if self.gateway_pid else 0.0
        machine, steal = machine_cpu_seconds()
        return Sample(
            time.perf_counter(), machine, steal, time.process_time(), gateway, int(sessions or 0)
        )

    @staticmethod
    def usage(before: Sample, after: Sample) -> Usage:
        span = after.at - before.at
        return Usage(
            machine=(after.machine - before.machine) / span,
            steal=(after.steal - before.steal) / span,
            gateway=(after.gateway - before.gateway) / span,
            bench=(after.bench - before.bench) / span,
            sessions=after.sessions - before.sessions,
        )


@dataclass(frozen=True)
class Result:
    name: str
    latencies: list[float]
    elapsed: float
    failures: list[str]
    usage: Usage

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed

    def percentile(self, fraction: float) -> float:
        """Nearest-rank percentile, in milliseconds."""
        ordered = sorted(self.latencies)
        rank = max(math.ceil(fraction * len(ordered)) - 1, 0)
        return ordered[min(rank, len(ordered) - 1)] * 1000


async def measure(
    name: str, attempt: Attempt[Earn], work: Workload, concurrency: int, monitor: Monitor
) -> Result:
    _, warmup_failures = await drive(attempt, work.warmup, concurrency)
    before = await monitor.sample()
    started = time.perf_counter()
    latencies, failures = await drive(attempt, work.timed, concurrency)
    elapsed = time.perf_counter() - started
    usage = Monitor.usage(before, await monitor.sample())
    print(f"  {name}: {len(latencies)} earns in {elapsed:.1f} s", flush=True)
    return Result(name, latencies, elapsed, warmup_failures + failures, usage)


# The database


async def prepare_database(database: Database) -> None:
    """Create the database when missing and give it an empty public schema."""
    admin = await asyncpg.connect(database.admin_url)
    try:
        exists = await admin.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", database.name
        )
        if not exists:
            quoted = '"' + database.name.replace('"', '""') + '"'
            await admin.execute(f"CREATE DATABASE {quoted}")
    finally:
        await admin.close()
    connection = await asyncpg.connect(database.url)
    try:
        await connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await connection.close()


# The gateway


@dataclass(frozen=True)
class Gateway:
    base_url: str
    pid: int
    log_path: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def coalition_command() -> Path:
    command = Path(sys.executable).parent / "coalition"
    if not command.exists():
        raise SystemExit(f"{command} is missing: run with the project's .venv/bin/python")
    return command


def open_log(directory: str) -> IO[bytes]:
    return open(Path(directory) / "gateway.log", "wb")  # closed by the caller


def die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the bench dies, even by SIGKILL (Linux)."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def log_tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


async def wait_healthy(gateway: Gateway, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(
                    f"the gateway exited with {process.returncode}:\n{log_tail(gateway.log_path)}"
                )
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"no healthy gateway after {HEALTH_TIMEOUT:.0f} s")


async def stop_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()


@asynccontextmanager
async def running_gateway(database: Database, log_dir: str) -> AsyncIterator[Gateway]:
    """The gateway in a subprocess, healthy; terminated on the way out, also on error."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database.gateway_url, "COALITION_DEMO_DATA": "false"}
    log = open_log(log_dir)
    try:
        process = await asyncio.create_subprocess_exec(
            str(coalition_command()), "serve", "--port", str(port),
            "--no-access-log", "--log-level", "warning",
            cwd=ROOT, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        try:
            gateway = Gateway(f"http://127.0.0.1:{port}", process.pid, Path(log.name))
            await wait_healthy(gateway, process)
            yield gateway
        finally:
            await stop_process(process)
    finally:
        log.close()


def http_client(base_url: str, concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(
        base_url=base_url,
        limits=limits,
        timeout=httpx.Timeout(30.0),
        headers={"accept": "application/json"},
    )


async def graphql(client: httpx.AsyncClient, query: str, variables: dict[str, Any]) -> Any:
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return body["data"]


async def enrol_all(
    client: httpx.AsyncClient, count: int, concurrency: int
) -> dict[str, list[Member]]:
    jobs = [Enrolment(partner, f"bench-{partner}-{index:06d}")
            for index in range(count) for partner in PARTNERS]
    found: dict[Enrolment, Member] = {}

    async def enrol(job: Enrolment) -> str | None:
        variables = {"input": {"partner": job.partner, "partnerCustomerId": job.customer_id}}
        payload = (await graphql(client, ENROL, variables))["enrolMember"]
        if payload["userErrors"] or payload["member"] is None:
            return f"userErrors: {payload['userErrors']}"
        global_id = payload["member"]["id"]
        found[job] = Member(global_id, member_uuid(global_id), job.partner)
        return None

    started = time.perf_counter()
    _, failures = await drive(enrol, jobs, concurrency)
    if failures:
        raise RuntimeError(f"{len(failures)} enrolments failed, e.g. {failures[:3]}")
    elapsed = time.perf_counter() - started
    print(f"  enrolled {len(jobs)} members in {elapsed:.1f} s ({len(jobs) / elapsed:.0f}/s)")
    return {partner: [found[job] for job in jobs if job.partner == partner]
            for partner in PARTNERS}


def earn_problem(response: httpx.Response, earn: Earn) -> str | None:
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    body = response.json()
    payload = (body.get("data") or {}).get("earnPoints")
    if body.get("errors") or payload is None:
        return f"GraphQL errors: {body.get('errors')}"
    if payload["userErrors"]:
        return f"userErrors: {payload['userErrors']}"
    if payload["transfer"] is None:
        return "no transfer in the payload"
    if payload["transfer"]["points"] != earn.points:
        return f"transfer of {payload['transfer']['points']} points, not {earn.points}"
    return None


def gateway_attempt(client: httpx.AsyncClient) -> Attempt[Earn]:
    async def attempt(earn: Earn) -> str | None:
        variables = {
            "input": {
                "partner": earn.partner,
                "member": {"id": earn.member.global_id},
                "idempotencyKey": earn.key,
                "points": earn.points,
            }
        }
        response = await client.post("/graphql", json={"query": EARN, "variables": variables})
        return earn_problem(response, earn)

    return attempt


def gateway_log_problems(path: Path) -> list[str]:
    markers = ("WARNING", "ERROR", "CRITICAL", "Traceback")
    return [line for line in path.read_text(errors="replace").splitlines()
            if line.startswith(markers)]


# Direct SQL


def fingerprint(member_id: str, points: int) -> str:
    """The request hash the gateway stores for an earn of ``points`` by member id."""
    request = {"member": {"id": member_id}, "points": points, "purchase_amount": None,
               "reason": None}
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


async def issuance_accounts(pool: asyncpg.Pool) -> dict[str, int]:
    rows = await pool.fetch(ISSUANCE_ACCOUNTS)
    accounts = {row["pool"]: row["id"] for row in rows}
    missing = set(PARTNERS) - set(accounts)
    if missing:
        raise RuntimeError(f"no issuance account for {sorted(missing)}")
    return accounts


async def post_earn(
    connection: asyncpg.Connection, issuance: dict[str, int], earn: Earn
) -> str | None:
    """One earn as the gateway posts it; the caller holds the transaction."""
    scope, member_id = f"{DIRECT_SCOPE}:{earn.partner}", earn.member.uuid
    if await connection.fetchrow(SELECT_TRANSFER_BY_KEY, scope, earn.key) is not None:
        return "idempotency key already used"
    if await connection.fetchrow(SELECT_MEMBER, member_id) is None:
        return "no such member"
    transfer_id = await connection.fetchval(
        CLAIM_TRANSFER, "earn", member_id, earn.partner, earn.points, None, None,
        scope, earn.key, fingerprint(member_id, earn.points), datetime.now(UTC),
    )
    if transfer_id is None:
        return "idempotency key claimed concurrently"
    wallet = await connection.fetchrow(
        CREDIT_WALLET, earn.partner, "wallet", member_id, earn.points
    )
    await connection.execute(
        INSERT_ENTRIES,
        transfer_id, issuance[earn.partner], earn.partner, None, -earn.points, None,
        transfer_id, wallet["id"], earn.partner, member_id, earn.points, wallet["balance"],
    )
    return None


def direct_attempt(pool: asyncpg.Pool, issuance: dict[str, int]) -> Attempt[Earn]:
    async def attempt(earn: Earn) -> str | None:
        async with pool.acquire() as connection, connection.transaction():
            return await post_earn(connection, issuance, earn)

    return attempt


# Consistency


async def consistency(connection: asyncpg.Connection, expected: int) -> tuple[list[str], bool]:
    lines, sound = [], True
    for row in await connection.fetch(POOL_TOTALS + " ORDER BY pool"):
        ok = row["total"] == 0
        sound &= ok
        lines.append(f"  pool {row['pool']:<10} {row['entries']:>7} entries, "
                     f"sum {row['total']:>3}  {'ok' if ok else 'NOT ZERO'}")
    wallets = await connection.fetchrow(WALLET_MISMATCHES)
    sound &= wallets["mismatched"] == 0
    lines.append(f"  wallets: {wallets['wallets']} checked, {wallets['mismatched']} differ "
                 f"from the sum of their entries")
    counts = await connection.fetchrow(POSTING_COUNTS)
    sound &= counts["transfers"] == expected and counts["odd_transfers"] == 0
    sound &= counts["entries"] == 2 * counts["transfers"]
    lines.append(f"  transfers: {counts['transfers']} posted for {expected} earns; "
                 f"{counts['entries']} entries, {counts['odd_transfers']} transfers "
                 f"without exactly two")
    lines.append(f"  => {'CONSISTENT' if sound else 'INCONSISTENT'}")
    return lines, sound


# Reporting


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator else "n/a"


def results_table(results: dict[str, Result]) -> list[str]:
    lines = [f"{'scenario':<16}{'earns':>7}{'earns/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
             f"{'failures':>10}"]
    for result in results.values():
        lines.append(f"{result.name:<16}{len(result.latencies):>7}{result.rate:>10.1f}"
                     f"{result.percentile(0.50):>9.2f}{result.percentile(0.99):>9.2f}"
                     f"{len(result.failures):>10}")
    return lines


def ratios_table(results: dict[str, Result]) -> list[str]:
    pairs = [
        ("gateway/direct spread", "gateway spread", "direct spread"),
        ("gateway/direct hot", "gateway hot", "direct hot"),
        ("hot/spread gateway", "gateway hot", "gateway spread"),
        ("hot/spread direct", "direct hot", "direct spread"),
    ]
    lines = [f"{'ratio':<24}{'earns/s':>9}{'p50':>9}{'p99':>9}"]
    for label, top, bottom in pairs:
        a, b = results[top], results[bottom]
        lines.append(f"{label:<24}{ratio(a.rate, b.rate):>9}"
                     f"{ratio(a.percentile(0.5), b.percentile(0.5)):>9}"
                     f"{ratio(a.percentile(0.99), b.percentile(0.99)):>9}")
    return lines


def usage_table(results: dict[str, Result], cores: int) -> list[str]:
    lines = [f"{'cores busy (of ' + str(cores) + ')':<20}{'machine':>8}{'gateway':>9}"
             f"{'bench':>7}{'other':>7}{'stolen':>8}{'new db sessions':>17}"]
    for result in results.values():
        use = result.usage
        lines.append(f"{result.name:<20}{use.machine:>8.2f}{use.gateway:>9.2f}"
                     f"{use.bench:>7.2f}{use.other:>7.2f}{use.steal:>8.2f}{use.sessions:>17}")
    lines.append("(other = machine - gateway - bench, mostly PostgreSQL; stolen by the "
                 "hypervisor; sessions from pg_stat_database)")
    return lines


def failure_lines(results: dict[str, Result]) -> list[str]:
    lines = []
    for result in results.values():
        if result.failures:
            lines.append(f"{result.name}: {len(result.failures)} failed earns")
            lines.extend(f"  {failure}" for failure in result.failures[:SHOWN_FAILURES])
            if len(result.failures) > SHOWN_FAILURES:
                lines.append(f"  ... and {len(result.failures) - SHOWN_FAILURES} more")
    return lines


def header(options: Options, database: Database, version: str) -> list[str]:
    return [
        f"machine: {os.cpu_count()} cores; {version.split(' on ')[0]}; "
        f"database {database.name}",
        f"parameters: members {options.members} per partner ({3 * options.members} in all), "
        f"requests {options.requests} per scenario after a warm-up of {options.warmup}, "
        f"concurrency {options.concurrency}, seed {options.seed}",
    ]


# The run


async def gateway_scenarios(
    database: Database, options: Options, rng: random.Random, monitor: Monitor, log_dir: str
) -> tuple[dict[str, list[Member]], dict[str, Result], list[str]]:
    """Enrol the members, then the two gateway scenarios; the gateway is stopped after."""
    results: dict[str, Result] = {}
    async with running_gateway(database, log_dir) as gateway:
        monitor.gateway_pid = gateway.pid
        try:
            async with http_client(gateway.base_url, options.concurrency) as client:
                members = await enrol_all(client, options.members, options.concurrency)
                attempt = gateway_attempt(client)
                for name, hot in (("gateway spread", False), ("gateway hot", True)):
                    work = workload(rng, members, hot, name.replace(" ", "-"), options)
                    results[name] = await measure(
                        name, attempt, work, options.concurrency, monitor
                    )
        finally:
            monitor.gateway_pid = None
    return members, results, gateway_log_problems(gateway.log_path)


async def direct_scenarios(
    database: Database,
    options: Options,
    rng: random.Random,
    members: dict[str, list[Member]],
    monitor: Monitor,
) -> dict[str, Result]:
    results: dict[str, Result] = {}
    pool = await asyncpg.create_pool(
        database.url, min_size=options.concurrency, max_size=options.concurrency
    )
    try:
        attempt = direct_attempt(pool, await issuance_accounts(pool))
        for name, hot in (("direct spread", False), ("direct hot", True)):
            work = workload(rng, members, hot, name.replace(" ", "-"), options)
            results[name] = await measure(name, attempt, work, options.concurrency, monitor)
    finally:
        await pool.close()
    return results


def cancel_on_sigterm() -> None:
    """SIGTERM cancels the run like Ctrl-C does, so the gateway is stopped on the way out."""
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


async def run(options: Options) -> int:
    started = time.perf_counter()
    cancel_on_sigterm()
    database = Database.from_env()
    rng = random.Random(options.seed)
    await prepare_database(database)
    print("setup: database reset, starting the gateway", flush=True)
    monitor_connection = await asyncpg.connect(database.url)
    try:
        monitor = Monitor(monitor_connection, database.name)
        version = await monitor_connection.fetchval("SELECT version()")
        with tempfile.TemporaryDirectory(prefix="bench-earn-") as log_dir:
            members, results, log_problems = await gateway_scenarios(
                database, options, rng, monitor, log_dir
            )
        results |= await direct_scenarios(database, options, rng, members, monitor)
        expected = sum(len(r.latencies) - len(r.failures) for r in results.values())
        expected += len(results) * options.warmup
        check, sound = await consistency(monitor_connection, expected)
    finally:
        await monitor_connection.close()
    report(options, database, version, results, log_problems, check)
    failed = sum(len(result.failures) for result in results.values())
    print(f"\nrun took {time.perf_counter() - started:.1f} s")
    return 1 if failed or not sound else 0


def report(
    options: Options,
    database: Database,
    version: str,
    results: dict[str, Result],
    log_problems: list[str],
    check: list[str],
) -> None:
    sections = [
        header(options, database, version),
        results_table(results),
        ratios_table(results),
        usage_table(results, os.cpu_count() or 1),
        [f"gateway log: {len(log_problems)} warning/error lines", *log_problems[:10]],
        ["consistency:", *check],
        failure_lines(results),
    ]
    print()
    print("\n\n".join("\n".join(section) for section in sections if section))


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    try:
        return asyncio.run(run(options))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; the gateway was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
