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
   on a copy of the demo configuration without its ``[sign_in]`` tables (the development
   sign-in providers allow one worker only; see bench/auth.py), after ``coalition client
   create --operator`` made the bench's OAuth client. Waits until ``GET /healthz``
   answers, takes one operator access token from ``POST /oauth/token`` (its lifetime
   raised to 6 h with COALITION_TOKEN_LIFETIME, so one token lasts the run) and waits
   until every worker process has answered a GraphQL request (it migrates at start-up,
   each worker starts on its own). Every GraphQL request carries that bearer token.
   Opens ``--concurrency`` HTTP/1.1 keep-alive connections, spread evenly over the
   workers (see ``bench.server.open_connections``), and enrols ``--members`` members at
   each of skyway, brewbar and freshmart through ``enrolMember`` (setup, not timed).
2. gateway spread: ``earnPoints`` from ``--concurrency`` clients, each with its own
   connection, each earn for a random member at a partner drawn uniformly. gateway hot:
   every earn at skyway, for members enrolled at skyway. Each scenario first runs
   ``--warmup`` earns that are not counted. The gateway is stopped after these two.
   The HTTP client is the minimal one in bench/client.py: requests are serialised
   before the clock starts and an answer is read with two buffered reads, so the bench
   takes little CPU from the gateway and PostgreSQL on a small machine (httpx took about
   2 ms per request); the report prints the bench's CPU per earn.
3. direct spread / direct hot (bench/direct.py): the same postings from ``--concurrency``
   asyncpg connections, one each, one transaction per earn with exactly the statements the
   gateway sends for it (gateway/service.py ``earn`` and ``_post``, gateway/repository.py
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
import random
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg  # type: ignore[import-untyped]  # ships no type information

from bench.client import HttpConnection, ProtocolProblem
from bench.database import Database, prepare_database, read_ledger
from bench.direct import direct_attempt, issuance_accounts
from bench.measurement import Monitor, Result, measure
from bench.mutations import earn_calls, enrol_all, gateway_attempt
from bench.options import Options
from bench.report import header, print_report
from bench.server import (
    connection_owners,
    log_problems,
    open_connections,
    running_gateway,
    spread_line,
)
from bench.workload import Member, workload

# Measured on the 2-core machine this was written on, 8 interleaved pairs of default runs:
# 2 workers gave the gateway a median 1.18x (spread) and 1.29x (hot) the earns/s of 1 and a
# lower p99; one worker tops out at one core while a core is left to PostgreSQL and the bench.
DEFAULT_WORKERS = 2


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


@dataclass
class GatewayRun:
    members: dict[str, list[Member]]
    results: dict[str, Result]
    log_problems: list[str]
    spread: str
    reopened: int


async def gateway_scenarios(
    database: Database, options: Options, rng: random.Random, monitor: Monitor, work_dir: str
) -> GatewayRun:
    """Enrol the members, then the two gateway scenarios; the gateway is stopped after."""
    results: dict[str, Result] = {}
    connections: list[HttpConnection] = []
    async with running_gateway(database, work_dir, options.workers) as gateway:
        monitor.gateway_pids = gateway.tree
        try:
            connections, balanced = await open_connections(gateway, options.concurrency)
            owners = await connection_owners(gateway, connections)
            spread = spread_line(gateway, owners, len(connections), balanced)
            print(f"  {spread}", flush=True)
            members = await enrol_all(connections, gateway.port, gateway.token, options.members)
            attempts = [gateway_attempt(connection) for connection in connections]
            for name, hot in (("gateway spread", False), ("gateway hot", True)):
                prefix = name.replace(" ", "-")
                work = workload(rng, members, hot, prefix, options.warmup, options.requests)
                warmup = earn_calls(gateway.port, gateway.token, work.warmup)
                timed = earn_calls(gateway.port, gateway.token, work.timed)
                results[name] = await measure(name, attempts, warmup, timed, monitor)
        finally:
            monitor.gateway_pids = []
            for connection in connections:
                await connection.close()
    reopened = sum(connection.reopened for connection in connections)
    return GatewayRun(members, results, log_problems(gateway.log_path), spread, reopened)


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
            prefix = name.replace(" ", "-")
            work = workload(rng, members, hot, prefix, options.warmup, options.requests)
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
        with tempfile.TemporaryDirectory(prefix="bench-earn-") as work_dir:
            gateway = await gateway_scenarios(database, options, rng, monitor, work_dir)
        results = gateway.results
        results |= await direct_scenarios(database, options, rng, gateway.members, monitor)
        # Every earn that did not fail posted once, warm-up earns included.
        expected = sum(len(r.latencies) - len(r.failures) for r in results.values())
        expected += len(results) * options.warmup
        ledger = await read_ledger(monitor_connection, expected)
    finally:
        await monitor_connection.close()
    print_report(
        header(options, database.name, version),
        results,
        gateway.spread,
        gateway.reopened,
        gateway.log_problems,
        ledger,
    )
    failed = sum(len(result.failures) for result in results.values())
    print(f"\nrun took {time.perf_counter() - started:.1f} s")
    return 1 if failed or not ledger.consistent else 0


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
