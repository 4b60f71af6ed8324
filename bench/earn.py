"""Earn throughput and latency: the real gateway over HTTP against the same SQL sent directly.

Usage, from the repository root with PostgreSQL on 127.0.0.1:5432 (user postgres, trust)::

    .venv/bin/python -m bench.earn [--members 2000] [--requests 4000] [--warmup 200]
                                   [--concurrency 16] [--workers 2] [--seed 1]

The database is ``coalition_bench``, created when missing and reset at the start of every
run (DROP SCHEMA public CASCADE; CREATE SCHEMA public). Point elsewhere with
``BENCH_DATABASE_URL=postgresql://user@host:port/name`` (``postgresql+asyncpg://`` works too).

What it does:

1. Starts the gateway (``.venv/bin/coalition serve --port <free> --workers <n>
   --no-access-log --log-level warning``, demo data off, its default DB pool per worker)
   and waits until ``GET /healthz`` answers and then until every worker process has
   answered a GraphQL request (it migrates at start-up, each worker starts on its own).
   Opens ``--concurrency`` HTTP/1.1 keep-alive connections, spread evenly over the
   workers (see ``open_connections``), and enrols ``--members`` members at each of
   skyway, brewbar and freshmart through ``enrolMember`` (setup, not timed).
2. gateway spread: ``earnPoints`` from ``--concurrency`` clients, each with its own
   connection, each earn for a random member at a partner drawn uniformly. gateway hot:
   every earn at skyway, for members enrolled at skyway. Each scenario first runs
   ``--warmup`` earns that are not counted. The gateway is stopped after these two.
   The HTTP client is the minimal one below (``HttpConnection``): requests are serialised
   before the clock starts and an answer is read with two buffered reads, so the bench
   takes little CPU from the gateway and PostgreSQL on a small machine (httpx took about
   2 ms per request); the report prints the bench's CPU per earn.
3. direct spread / direct hot: the same postings from ``--concurrency`` asyncpg
   connections, one each, one transaction per earn with exactly the statements the gateway
   sends for it (gateway/service.py ``earn`` and ``_post``, gateway/repository.py
   ``claim_transfer`` and ``post_legs``), as SQLAlchemy renders them, in the gateway's
   order: BEGIN; the transfer INSERT ... ON CONFLICT DO NOTHING RETURNING id; the wallet
   upsert RETURNING id, balance; the entries INSERT as an executemany of the two legs;
   COMMIT. Their idempotency scope is ``bench-direct:<partner>``, never the gateway's
   ``earn:<partner>``, so the two can not collide.
4. Prints earns/s and the client-side p50/p99 latency of each scenario (write of the
   request to the last byte of the answer; for direct, BEGIN to COMMIT), the gateway/direct
   and hot/spread ratios, where the CPU went (in cores and in ms per earn, from /proc) and
   how many new database sessions were opened, then a consistency check in SQL: every
   pool's entries sum to zero, every wallet balance equals the sum of its entries, and
   each earn posted exactly one transfer with two entries.

Exits 1 when any earn failed or the consistency check found a problem. Linux only (/proc).
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
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]  # ships no type information

ROOT = Path(__file__).resolve().parent.parent
PARTNERS = ("skyway", "brewbar", "freshmart")
HOT_PARTNER = "skyway"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/coalition_bench"
DIRECT_SCOPE = "bench-direct"
HOST = "127.0.0.1"
HEALTH_TIMEOUT = 60.0
REQUEST_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
BALANCE_ATTEMPTS = 200
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SHOWN_FAILURES = 20
# Measured on the 2-core machine this was written on, 8 interleaved pairs of default runs:
# 2 workers gave the gateway a median 1.18x (spread) and 1.29x (hot) the earns/s of 1 and a
# lower p99; one worker tops out at one core while a core is left to PostgreSQL and the bench.
DEFAULT_WORKERS = 2

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
PROBE = "{ __typename }"

# What SQLAlchemy renders for gateway/repository.py with the asyncpg dialect (captured
# with echo=True and PostgreSQL's log_statement), character for character.
CLAIM_TRANSFER = (
    "INSERT INTO transfers (kind, member_id, partner, points, purchase_amount, reason, "
    "idempotency_scope, idempotency_key, request_hash, created_at) VALUES ($1::VARCHAR, "
    "$2::VARCHAR, $3::VARCHAR, $4::BIGINT, $5::VARCHAR, $6::VARCHAR, $7::VARCHAR, "
    "$8::VARCHAR, $9::VARCHAR, $10::TIMESTAMP WITH TIME ZONE) ON CONFLICT "
    "(idempotency_scope, idempotency_key) DO NOTHING RETURNING transfers.id"
)
CREDIT_WALLET = (
    "INSERT INTO accounts (pool, code, member_id, balance) VALUES ($1::VARCHAR, $2::VARCHAR, "
    "$3::VARCHAR, $4::BIGINT) ON CONFLICT (member_id, pool) WHERE member_id IS NOT NULL "
    "DO UPDATE SET balance = (accounts.balance + excluded.balance) "
    "RETURNING accounts.id, accounts.balance"
)
INSERT_ENTRIES = (
    "INSERT INTO entries (transfer_id, account_id, pool, member_id, amount, balance_after) "
    "VALUES ($1::BIGINT, $2::BIGINT, $3::VARCHAR, $4::VARCHAR, $5::BIGINT, $6::BIGINT)"
)
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
    workers: int
    seed: int


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.earn", description="Benchmark earnPoints: gateway vs direct SQL."
    )
    parser.add_argument("--members", type=int, default=2000, help="members per partner")
    parser.add_argument("--requests", type=int, default=4000, help="timed earns per scenario")
    parser.add_argument("--warmup", type=int, default=200, help="untimed earns first")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients")
    parser.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS, help="gateway worker processes"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed")
    args = parser.parse_args(argv)
    if min(args.members, args.requests, args.concurrency, args.workers) < 1 or args.warmup < 0:
        parser.error("--members, --requests, --concurrency and --workers must be positive")
    return Options(
        args.members, args.requests, args.warmup, args.concurrency, args.workers, args.seed
    )


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


# A minimal HTTP/1.1 client


class ProtocolProblem(Exception):
    """The gateway answered in a way this client does not handle: the run stops."""


def post_request(port: int, body: bytes) -> bytes:
    """A complete POST /graphql, ready to write."""
    return (
        b"POST /graphql HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
        b"Accept: application/graphql-response+json\r\nContent-Length: %d\r\n\r\n%s"
        % (HOST.encode(), port, len(body), body)
    )


def graphql_request(port: int, query: str, variables: dict[str, Any] | None = None) -> bytes:
    document: dict[str, Any] = {"query": query}
    if variables is not None:
        document["variables"] = variables
    return post_request(port, json.dumps(document, separators=(",", ":")).encode())


def parse_head(head: bytes) -> tuple[int, int, bool]:
    """Status, Content-Length and whether the server will close, from a response head."""
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    if version != "HTTP/1.1" or not rest[:3].isdigit():
        raise ProtocolProblem(f"not an HTTP/1.1 status line: {status_line!r}")
    length: int | None = None
    close = False
    for line in header_lines:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding":
            raise ProtocolProblem(f"Transfer-Encoding: {value.strip()} (only Content-Length)")
        elif name == "connection":
            close = "close" in value.lower()
    if length is None:
        raise ProtocolProblem(f"a response without Content-Length: {head[:300]!r}")
    return int(rest[:3]), length, close


class HttpConnection:
    """One keep-alive connection, one request at a time; reopened when the server closed it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reopened = 0

    @property
    def local_port(self) -> int:
        assert self.writer is not None
        port: int = self.writer.get_extra_info("sockname")[1]
        return port

    async def open(self) -> HttpConnection:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        self.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    async def close(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()

    async def exchange(self, request: bytes) -> tuple[float, int, bytes]:
        """Write ``request``, read the whole answer: seconds taken, status and body."""
        reader, writer = self.reader, self.writer
        if reader is None or writer is None or reader.at_eof():
            # Closed by the server while idle (keep-alive timeout): not part of a request.
            await self.close()
            await self.open()
            self.reopened += 1
            reader, writer = self.reader, self.writer
            assert reader is not None and writer is not None
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status, length, close = parse_head(head)
                body = await reader.readexactly(length)
                took = time.perf_counter() - started
        except BaseException:
            await self.close()  # in an unknown state: never reuse it
            raise
        if close:
            await self.close()
        return took, status, body


async def fetch_once(port: int, request: bytes) -> tuple[int, bytes, HttpConnection]:
    """One request on a new connection; the connection is returned open, to inspect."""
    connection = await HttpConnection(port).open()
    try:
        _, status, body = await connection.exchange(request)
    except BaseException:
        await connection.close()
        raise
    return status, body, connection


# Measuring


# Seconds taken and None when it worked, else what went wrong.
Attempt = Callable[[T], Awaitable[tuple[float, str | None]]]


async def drive(
    attempts: Sequence[Attempt[T]], items: Sequence[T]
) -> tuple[list[float], list[str]]:
    """Run the items from one worker per attempt (each its own connection)."""
    latencies: list[float] = []
    failures: list[str] = []
    pending = iter(items)

    async def worker(attempt: Attempt[T]) -> None:
        for item in pending:
            started = time.perf_counter()
            try:
                took, problem = await attempt(item)
            except ProtocolProblem:
                raise
            except Exception as error:
                took, problem = time.perf_counter() - started, f"{type(error).__name__}: {error}"
            latencies.append(took)
            if problem is not None:
                failures.append(f"{item}: {problem}")

    async with asyncio.TaskGroup() as group:
        for attempt in attempts:
            group.create_task(worker(attempt))
    return latencies, failures


def machine_cpu_seconds() -> tuple[float, float]:
    """CPU seconds since boot, all cores: busy (not idle, iowait or steal), and stolen."""
    with open("/proc/stat") as stat:
        ticks = [int(value) for value in stat.readline().split()[1:9]]
    idle, iowait, steal = ticks[3], ticks[4], ticks[7]
    return (sum(ticks) - idle - iowait - steal) / CLOCK_TICKS, steal / CLOCK_TICKS


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a live process; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children_of(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children.append(int(entry.name))
    return children


def command_line(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}") / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def server_ends(server_port: int, pids: Sequence[int]) -> dict[int, int]:
    """Client port -> the pid (among ``pids``) holding the server end of that connection."""
    inodes: dict[int, int] = {}  # socket inode -> client port
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, remote, inode = fields[1], fields[2], int(fields[9])
            if int(local.rsplit(":", 1)[1], 16) == server_port and inode:
                inodes[inode] = int(remote.rsplit(":", 1)[1], 16)
    owners: dict[int, int] = {}
    for pid in pids:
        try:
            descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                target = os.readlink(descriptor)
            except OSError:
                continue
            if target.startswith("socket:["):
                client_port = inodes.get(int(target[8:-1]))
                if client_port:
                    owners[client_port] = pid
    return owners


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
        self.gateway_pids: list[int] = []  # the gateway's process and its workers

    async def sample(self) -> Sample:
        sessions = await self.connection.fetchval(
            "SELECT sessions FROM pg_stat_database WHERE datname = $1", self.database
        )
        gateway = sum(process_cpu_seconds(pid) for pid in self.gateway_pids)
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

    def per_earn(self, cores: float) -> float:
        """Milliseconds of CPU per earn, from cores busy over the scenario."""
        return cores * self.elapsed / len(self.latencies) * 1000


async def measure(
    name: str,
    attempts: Sequence[Attempt[T]],
    warmup: Sequence[T],
    timed: Sequence[T],
    monitor: Monitor,
) -> Result:
    _, warmup_failures = await drive(attempts, warmup)
    before = await monitor.sample()
    started = time.perf_counter()
    latencies, failures = await drive(attempts, timed)
    elapsed = time.perf_counter() - started
    usage = Monitor.usage(before, await monitor.sample())
    print(f"  {name}: {len(latencies)} earns in {elapsed:.1f} s", flush=True)
    return Result(name, latencies, elapsed, warmup_failures + failures, usage)


# The database


async def prepare_database(database: Database) -> None:
    """Create the database when missing and give it an empty public schema."""
    admin = await asyncpg.connect(database.admin_url)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database.name)
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


@dataclass
class Gateway:
    port: int
    pid: int
    log_path: Path
    servers: list[int]  # the processes that accept connections: the workers, or pid itself
    tree: list[int]  # pid and all its children, for CPU accounting


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
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


async def wait_ready(gateway: Gateway, process: asyncio.subprocess.Process, workers: int) -> None:
    """Wait for /healthz, then until every worker process has answered a GraphQL request.

    uvicorn's workers share one listening socket and each accepts only once its own
    start-up is done, so the first 200 says one worker is ready, not all of them. A fresh
    connection per probe, and /proc tells which worker accepted it.
    """
    deadline = time.monotonic() + HEALTH_TIMEOUT
    health = b"GET /healthz HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (HOST.encode(), gateway.port)
    probe = graphql_request(gateway.port, PROBE)
    healthy = False
    answered: set[int] = set()
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(
                f"the gateway exited with {process.returncode}:\n{log_tail(gateway.log_path)}"
            )
        if workers > 1 and len(gateway.servers) < workers:
            gateway.servers = [
                pid for pid in children_of(gateway.pid) if "spawn_main" in command_line(pid)
            ]
        try:
            if not healthy:
                status, _, connection = await fetch_once(gateway.port, health)
                await connection.close()
                healthy = status == 200
                if not healthy:
                    await asyncio.sleep(0.1)
                continue
            status, body, connection = await fetch_once(gateway.port, probe)
            try:
                owner = server_ends(gateway.port, gateway.servers).get(connection.local_port)
            finally:
                await connection.close()
            if status == 200 and json.loads(body).get("data") == {"__typename": "Query"}:
                answered.add(owner or 0)
            if answered >= set(gateway.servers) and len(gateway.servers) == workers:
                gateway.tree = [gateway.pid, *children_of(gateway.pid)]
                return
            await asyncio.sleep(0.05)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            await asyncio.sleep(0.1)
    raise RuntimeError(
        f"no healthy gateway with {workers} worker(s) after {HEALTH_TIMEOUT:.0f} s "
        f"(healthy: {healthy}, workers answering: {len(answered)})"
    )


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
async def running_gateway(database: Database, log_dir: str, workers: int) -> AsyncIterator[Gateway]:
    """The gateway in a subprocess, every worker ready; terminated on the way out."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database.gateway_url, "COALITION_DEMO_DATA": "false"}
    log = open_log(log_dir)
    try:
        process = await asyncio.create_subprocess_exec(
            str(coalition_command()),
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        try:
            servers = [process.pid] if workers == 1 else []
            gateway = Gateway(port, process.pid, Path(log.name), servers, [process.pid])
            await wait_ready(gateway, process, workers)
            yield gateway
        finally:
            await stop_process(process)
    finally:
        log.close()


async def open_connections(gateway: Gateway, count: int) -> tuple[list[HttpConnection], int]:
    """``count`` keep-alive connections, as evenly spread over the workers as can be.

    Which worker accepts a connection is up to the kernel and to which worker is quickest
    to call accept(); a benchmark with a few long-lived connections can end up with most of
    them on one worker, which many clients in production would not. A connection on a
    worker holding more than its share is closed and opened again, a bounded number of
    times; the spread reached, and how many connections that took, are reported.
    """
    connections = [await HttpConnection(gateway.port).open() for _ in range(count)]
    if len(gateway.servers) < 2:
        return connections, 0
    fair = math.ceil(count / len(gateway.servers))
    for balanced in range(BALANCE_ATTEMPTS):
        owners = await connection_owners(gateway, connections)
        load = Counter(owners.values())
        crowded = [
            index
            for index, connection in enumerate(connections)
            if load[owners.get(connection.local_port, 0)] > fair
        ]
        if not crowded:
            return connections, balanced
        index = crowded[0]
        await connections[index].close()
        connections[index] = await HttpConnection(gateway.port).open()
    return connections, BALANCE_ATTEMPTS


async def connection_owners(gateway: Gateway, connections: list[HttpConnection]) -> dict[int, int]:
    """Client port -> worker pid; waits a moment for accept() to happen on the server."""
    ports = {connection.local_port for connection in connections}
    for _ in range(50):
        owners = server_ends(gateway.port, gateway.servers)
        if ports <= owners.keys():
            break
        await asyncio.sleep(0.01)
    return {port: pid for port, pid in owners.items() if port in ports}


def spread_line(gateway: Gateway, owners: dict[int, int], count: int, balanced: int) -> str:
    load = Counter(owners.values())
    shares = " + ".join(str(load[pid]) for pid in gateway.servers)
    unknown = count - sum(load.values())
    line = f"gateway: {len(gateway.servers)} worker(s), {count} connections spread {shares}"
    if balanced:
        line += f" ({balanced} reopened to spread them)"
    if unknown:
        line += f" ({unknown} not found in /proc)"
    return line


def payload_of(status: int, body: bytes, field: str) -> tuple[dict[str, Any] | None, str | None]:
    """The mutation's payload from an answer, or what went wrong."""
    if status != 200:
        return None, f"HTTP {status}: {body[:300]!r}"
    document = json.loads(body)
    payload = (document.get("data") or {}).get(field)
    if document.get("errors") or payload is None:
        return None, f"GraphQL errors: {document.get('errors')}"
    if payload["userErrors"]:
        return None, f"userErrors: {payload['userErrors']}"
    return payload, None


async def enrol_all(
    connections: Sequence[HttpConnection], port: int, count: int
) -> dict[str, list[Member]]:
    jobs = [
        Enrolment(partner, f"bench-{partner}-{index:06d}")
        for index in range(count)
        for partner in PARTNERS
    ]
    found: dict[Enrolment, Member] = {}

    def attempt_on(connection: HttpConnection) -> Attempt[Enrolment]:
        async def enrol(job: Enrolment) -> tuple[float, str | None]:
            variables = {"input": {"partner": job.partner, "partnerCustomerId": job.customer_id}}
            request = graphql_request(port, ENROL, variables)
            took, status, body = await connection.exchange(request)
            payload, problem = payload_of(status, body, "enrolMember")
            if payload is None:
                return took, problem
            if payload["member"] is None:
                return took, "no member in the payload"
            global_id = payload["member"]["id"]
            found[job] = Member(global_id, member_uuid(global_id), job.partner)
            return took, None

        return enrol

    started = time.perf_counter()
    _, failures = await drive([attempt_on(connection) for connection in connections], jobs)
    if failures:
        raise RuntimeError(f"{len(failures)} enrolments failed, e.g. {failures[:3]}")
    elapsed = time.perf_counter() - started
    print(f"  enrolled {len(jobs)} members in {elapsed:.1f} s ({len(jobs) / elapsed:.0f}/s)")
    return {partner: [found[job] for job in jobs if job.partner == partner] for partner in PARTNERS}


@dataclass(frozen=True)
class EarnCall:
    """An earn with its HTTP request already serialised."""

    earn: Earn
    request: bytes

    def __str__(self) -> str:
        return str(self.earn)


def earn_calls(port: int, earns: Sequence[Earn]) -> list[EarnCall]:
    calls = []
    for earn in earns:
        variables = {
            "input": {
                "partner": earn.partner,
                "member": {"id": earn.member.global_id},
                "idempotencyKey": earn.key,
                "points": earn.points,
            }
        }
        calls.append(EarnCall(earn, graphql_request(port, EARN, variables)))
    return calls


def earn_problem(status: int, body: bytes, earn: Earn) -> str | None:
    payload, problem = payload_of(status, body, "earnPoints")
    if payload is None:
        return problem
    if payload["transfer"] is None:
        return "no transfer in the payload"
    if payload["transfer"]["points"] != earn.points:
        return f"transfer of {payload['transfer']['points']} points, not {earn.points}"
    return None


def gateway_attempt(connection: HttpConnection) -> Attempt[EarnCall]:
    async def attempt(call: EarnCall) -> tuple[float, str | None]:
        took, status, body = await connection.exchange(call.request)
        return took, earn_problem(status, body, call.earn)

    return attempt


def gateway_log_problems(path: Path) -> list[str]:
    markers = ("WARNING", "ERROR", "CRITICAL", "Traceback")
    return [
        line for line in path.read_text(errors="replace").splitlines() if line.startswith(markers)
    ]


# Direct SQL


def fingerprint(member_id: str, points: int) -> str:
    """The request hash the gateway stores for an earn of ``points`` by member id."""
    request = {
        "member": {"id": member_id},
        "points": points,
        "purchase_amount": None,
        "reason": None,
    }
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


async def issuance_accounts(connection: asyncpg.Connection) -> dict[str, int]:
    rows = await connection.fetch(ISSUANCE_ACCOUNTS)
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
    transfer_id = await connection.fetchval(
        CLAIM_TRANSFER,
        "earn",
        member_id,
        earn.partner,
        earn.points,
        None,
        None,
        scope,
        earn.key,
        fingerprint(member_id, earn.points),
        datetime.now(UTC),
    )
    if transfer_id is None:
        return "idempotency key already used"
    wallet = await connection.fetchrow(
        CREDIT_WALLET, earn.partner, "wallet", member_id, earn.points
    )
    await connection.executemany(
        INSERT_ENTRIES,
        [
            (transfer_id, issuance[earn.partner], earn.partner, None, -earn.points, None),
            (transfer_id, wallet["id"], earn.partner, member_id, earn.points, wallet["balance"]),
        ],
    )
    return None


def direct_attempt(connection: asyncpg.Connection, issuance: dict[str, int]) -> Attempt[Earn]:
    async def attempt(earn: Earn) -> tuple[float, str | None]:
        started = time.perf_counter()
        async with connection.transaction():
            problem = await post_earn(connection, issuance, earn)
        return time.perf_counter() - started, problem

    return attempt


# Consistency


async def consistency(connection: asyncpg.Connection, expected: int) -> tuple[list[str], bool]:
    lines, sound = [], True
    for row in await connection.fetch(POOL_TOTALS + " ORDER BY pool"):
        ok = row["total"] == 0
        sound &= ok
        lines.append(
            f"  pool {row['pool']:<10} {row['entries']:>7} entries, "
            f"sum {row['total']:>3}  {'ok' if ok else 'NOT ZERO'}"
        )
    wallets = await connection.fetchrow(WALLET_MISMATCHES)
    sound &= wallets["mismatched"] == 0
    lines.append(
        f"  wallets: {wallets['wallets']} checked, {wallets['mismatched']} differ "
        f"from the sum of their entries"
    )
    counts = await connection.fetchrow(POSTING_COUNTS)
    sound &= counts["transfers"] == expected and counts["odd_transfers"] == 0
    sound &= counts["entries"] == 2 * counts["transfers"]
    lines.append(
        f"  transfers: {counts['transfers']} posted for {expected} earns; "
        f"{counts['entries']} entries, {counts['odd_transfers']} transfers "
        f"without exactly two"
    )
    lines.append(f"  => {'CONSISTENT' if sound else 'INCONSISTENT'}")
    return lines, sound


# Reporting


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator else "n/a"


def results_table(results: dict[str, Result]) -> list[str]:
    lines = [
        f"{'scenario':<16}{'earns':>7}{'earns/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'failures':>10}"
    ]
    for result in results.values():
        lines.append(
            f"{result.name:<16}{len(result.latencies):>7}{result.rate:>10.1f}"
            f"{result.percentile(0.50):>9.2f}{result.percentile(0.99):>9.2f}"
            f"{len(result.failures):>10}"
        )
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
        if top not in results or bottom not in results:
            continue
        a, b = results[top], results[bottom]
        lines.append(
            f"{label:<24}{ratio(a.rate, b.rate):>9}"
            f"{ratio(a.percentile(0.5), b.percentile(0.5)):>9}"
            f"{ratio(a.percentile(0.99), b.percentile(0.99)):>9}"
        )
    return lines


def usage_table(results: dict[str, Result], cores: int) -> list[str]:
    lines = [
        f"{'cores busy (of ' + str(cores) + ')':<20}{'machine':>8}{'gateway':>9}"
        f"{'bench':>7}{'other':>7}{'stolen':>8}{'new db sessions':>17}"
    ]
    for result in results.values():
        use = result.usage
        lines.append(
            f"{result.name:<20}{use.machine:>8.2f}{use.gateway:>9.2f}"
            f"{use.bench:>7.2f}{use.other:>7.2f}{use.steal:>8.2f}{use.sessions:>17}"
        )
    lines.append(
        "(other = machine - gateway - bench, mostly PostgreSQL; stolen by the "
        "hypervisor; sessions from pg_stat_database)"
    )
    return lines


def per_earn_table(results: dict[str, Result]) -> list[str]:
    lines = [f"{'CPU ms per earn':<20}{'machine':>8}{'gateway':>9}{'bench':>7}{'other':>7}"]
    for result in results.values():
        use = result.usage
        lines.append(
            f"{result.name:<20}{result.per_earn(use.machine):>8.2f}"
            f"{result.per_earn(use.gateway):>9.2f}{result.per_earn(use.bench):>7.2f}"
            f"{result.per_earn(use.other):>7.2f}"
        )
    lines.append(
        "(bench in the gateway rows = this HTTP client; in the direct rows = asyncpg "
        "and the same Python work the gateway does per posting)"
    )
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
    pool = os.environ.get("DB_POOL_SIZE")
    pool = f"DB pool {pool} (DB_POOL_SIZE)" if pool else "its default DB pool"
    return [
        f"machine: {os.cpu_count()} cores; {version.split(' on ')[0]}; database {database.name}",
        f"parameters: members {options.members} per partner ({3 * options.members} in all), "
        f"requests {options.requests} per scenario after a warm-up of {options.warmup}, "
        f"concurrency {options.concurrency}, gateway workers {options.workers} "
        f"({pool} per worker), seed {options.seed}",
    ]


# The run


@dataclass
class GatewayRun:
    members: dict[str, list[Member]]
    results: dict[str, Result]
    log_problems: list[str]
    spread: str
    reopened: int


async def gateway_scenarios(
    database: Database, options: Options, rng: random.Random, monitor: Monitor, log_dir: str
) -> GatewayRun:
    """Enrol the members, then the two gateway scenarios; the gateway is stopped after."""
    results: dict[str, Result] = {}
    connections: list[HttpConnection] = []
    async with running_gateway(database, log_dir, options.workers) as gateway:
        monitor.gateway_pids = gateway.tree
        try:
            connections, balanced = await open_connections(gateway, options.concurrency)
            owners = await connection_owners(gateway, connections)
            spread = spread_line(gateway, owners, len(connections), balanced)
            print(f"  {spread}", flush=True)
            members = await enrol_all(connections, gateway.port, options.members)
            attempts = [gateway_attempt(connection) for connection in connections]
            for name, hot in (("gateway spread", False), ("gateway hot", True)):
                work = workload(rng, members, hot, name.replace(" ", "-"), options)
                warmup = earn_calls(gateway.port, work.warmup)
                timed = earn_calls(gateway.port, work.timed)
                results[name] = await measure(name, attempts, warmup, timed, monitor)
        finally:
            monitor.gateway_pids = []
            for connection in connections:
                await connection.close()
    reopened = sum(connection.reopened for connection in connections)
    problems = gateway_log_problems(gateway.log_path)
    return GatewayRun(members, results, problems, spread, reopened)


async def direct_scenarios(
    database: Database,
    options: Options,
    rng: random.Random,
    members: dict[str, list[Member]],
    monitor: Monitor,
) -> dict[str, Result]:
    results: dict[str, Result] = {}
    connections = [await asyncpg.connect(database.url) for _ in range(options.concurrency)]
    try:
        issuance = await issuance_accounts(connections[0])
        attempts = [direct_attempt(connection, issuance) for connection in connections]
        for name, hot in (("direct spread", False), ("direct hot", True)):
            work = workload(rng, members, hot, name.replace(" ", "-"), options)
            results[name] = await measure(name, attempts, work.warmup, work.timed, monitor)
    finally:
        for connection in connections:
            await connection.close()
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
    print(f"setup: database reset, starting the gateway ({options.workers} worker(s))", flush=True)
    monitor_connection = await asyncpg.connect(database.url)
    try:
        monitor = Monitor(monitor_connection, database.name)
        version = await monitor_connection.fetchval("SELECT version()")
        with tempfile.TemporaryDirectory(prefix="bench-earn-") as log_dir:
            gateway = await gateway_scenarios(database, options, rng, monitor, log_dir)
        results = gateway.results
        results |= await direct_scenarios(database, options, rng, gateway.members, monitor)
        expected = sum(len(r.latencies) - len(r.failures) for r in results.values())
        expected += len(results) * options.warmup
        check, sound = await consistency(monitor_connection, expected)
    finally:
        await monitor_connection.close()
    report(options, database, version, results, gateway, check)
    failed = sum(len(result.failures) for result in results.values())
    print(f"\nrun took {time.perf_counter() - started:.1f} s")
    return 1 if failed or not sound else 0


def report(
    options: Options,
    database: Database,
    version: str,
    results: dict[str, Result],
    gateway: GatewayRun,
    check: list[str],
) -> None:
    connections = [
        gateway.spread,
        f"connections reopened during the run (closed by the server, or after a failure): "
        f"{gateway.reopened}",
    ]
    sections = [
        header(options, database, version),
        results_table(results),
        ratios_table(results),
        usage_table(results, os.cpu_count() or 1),
        per_earn_table(results),
        connections,
        [
            f"gateway log: {len(gateway.log_problems)} warning/error lines",
            *gateway.log_problems[:10],
        ],
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
    except (ProtocolProblem, ExceptionGroup) as error:
        problems = error.subgroup(ProtocolProblem) if isinstance(error, ExceptionGroup) else error
        if problems is None:
            raise
        print(f"the gateway's answer can not be read: {problems!r}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
