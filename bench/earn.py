"""Earn throughput and latency: the real gateway over HTTP against the same SQL sent directly,
and whether an earn or a wallet read costs more for a member with a long history.

Usage, from the repository root with PostgreSQL on 127.0.0.1:5432 (user postgres, trust)::

    .venv/bin/python -m bench.earn [--members 2000] [--requests 4000] [--warmup 200]
                                   [--concurrency 16] [--workers 2] [--seed 1]
                                   [--pairs 100] [--pair-warmup 10]

The database is ``coalition_bench``, created when missing and reset at the start of every
run (DROP SCHEMA public CASCADE; CREATE SCHEMA public). Point elsewhere with
``BENCH_DATABASE_URL=postgresql://user@host:port/name`` (``postgresql+asyncpg://`` works too).

What it does:

1. Starts the gateway (``.venv/bin/coalition serve --port <free> --workers <n>
   --no-access-log --log-level warning``, demo data off, its default DB pool per worker)
   on a copy of the demo configuration without its ``[sign_in]`` tables (the development
   sign-in providers allow one worker only; see bench/auth.py) and with its programme
   (tiers, challenges, promotions) on, after ``coalition client create --operator`` made the
   bench's OAuth client. Waits until ``GET /healthz`` answers, takes one operator access
   token from ``POST /oauth/token`` (its lifetime raised to 6 h with
   COALITION_TOKEN_LIFETIME) and waits until every worker process has answered a GraphQL
   request. Every GraphQL request carries that bearer token. Opens ``--concurrency``
   HTTP/1.1 keep-alive connections, spread evenly over the workers (see
   ``bench.server.open_connections``). Enrols four skyway members for the history pairs,
   then ``--members`` members at each of skyway, brewbar and freshmart through
   ``enrolMember``, while the four members' histories are seeded with SQL (HISTORIES;
   bench/history.py). None of this is timed.
2. gateway spread: ``earnPoints`` from ``--concurrency`` clients, each with its own
   connection, each earn for a random member at a partner drawn uniformly. gateway hot:
   every earn at skyway, for members enrolled at skyway. Each scenario first runs
   ``--warmup`` earns that are not counted. The HTTP client is the minimal one in
   bench/client.py (httpx took about 2 ms per request); the report prints its CPU per earn.
3. The pairs, on one connection, alternately (bench/history.py): an earn at skyway for the
   member with 10 earlier transfers and for the one with 10,000; then ``member { wallets {
   balance } }`` for the member with 1,000 entries and the one with 1,000,000.
   ``--pair-warmup`` untimed then ``--pairs`` timed requests each. The gateway is stopped.
4. direct spread / direct hot (bench/direct.py): first the gateway is started in this
   process and one earn per partner sent through it with SQLAlchemy's engine events
   recording its statements (bench/trace.py); the transaction that claimed the earn's key
   is the posting. Then the same workloads from ``--concurrency`` asyncpg connections, one
   transaction per earn sending exactly those statements (text as recorded, the earn's own
   values; bench/replay.py). The report lists them.
5. Prints earns/s and the client-side p50/p99 latency of each scenario (write of the request
   to the last byte of the answer; for direct, BEGIN to COMMIT), the ratios, the pairs' p50,
   mean and ratio, issue 11's aims beside the figures, where the CPU went (from /proc) and
   how many database sessions were opened, then the consistency check (bench/consistency.py).

Exits 1 when any request failed or the consistency check found a problem; an aim missed is
reported, not a failure. Linux only (/proc).
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
from bench.consistency import check_ledger
from bench.database import Database, prepare_database
from bench.direct import direct_attempt
from bench.history import Pair, analyze, earn_requests, run_pair, seed_history, wallet_requests
from bench.measurement import Monitor, Result, measure
from bench.mutations import earn_calls, enrol_all, gateway_attempt
from bench.options import Options
from bench.replay import describe
from bench.report import Report, header, print_report
from bench.server import (
    Gateway,
    connection_owners,
    log_problems,
    open_connections,
    running_gateway,
    spread_line,
)
from bench.trace import trace_postings
from bench.workload import HOT_PARTNER, PARTNERS, Earn, Member, workload
from partners.config.coalition import DEMO_DIRECTORY, load_coalition

# Measured on the 2-core machine this was written on, 8 interleaved pairs of default runs:
# 2 workers gave the gateway a median 1.18x (spread) and 1.29x (hot) the earns/s of 1 and a
# lower p99; one worker tops out at one core while a core is left to PostgreSQL and the bench.
DEFAULT_WORKERS = 2
# Earlier transfers (entries, for the wallet read) of the four members of the history pairs:
# earn with a short history, earn with a long one, wallet read small, wallet read large.
HISTORIES = (10, 10_000, 1_000, 1_000_000)
# The traced earns' points: a value no statement of the posting returns (see trace_earns).
TRACE_POINTS = 123_457
WALLET_BALANCE = "SELECT balance FROM accounts WHERE member_id = $1 AND pool = $2"


def programme_line() -> str:
    coalition = load_coalition(DEMO_DIRECTORY)
    partners = coalition.partners.values()
    promotions = sum(len(partner.earning.promotions) for partner in partners)
    multipliers = sum(len(partner.earning.multipliers) for partner in partners)
    tiers = len(coalition.tiers.levels) if coalition.tiers is not None else 0
    return (
        f"{tiers} tiers, {len(coalition.challenges)} challenges, "
        f"{promotions} promotion(s), {multipliers} multiplier(s)"
    )


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
    parser.add_argument(
        "--pairs", type=int, default=100, help="timed requests per member in the history pairs"
    )
    parser.add_argument("--pair-warmup", type=int, default=10, help="untimed ones first")
    args = parser.parse_args(argv)
    positive = (args.members, args.requests, args.concurrency, args.workers, args.pairs)
    if min(positive) < 1 or args.warmup < 0 or args.pair_warmup < 0:
        parser.error("--members, --requests, --concurrency, --workers and --pairs must be positive")
    return Options(
        args.members,
        args.requests,
        args.warmup,
        args.concurrency,
        args.workers,
        args.seed,
        args.pairs,
        args.pair_warmup,
    )


@dataclass
class GatewayRun:
    members: dict[str, list[Member]]
    results: dict[str, Result]
    pairs: dict[str, Pair]
    earns: list[Earn]  # every earn asked for
    seeded: int  # transfers seeded as history
    env: dict[str, str]  # the gateway's environment, for the trace
    log_problems: list[str]
    spread: str
    reopened: int


async def seed_reserved(url: str, reserved: list[Member]) -> int:
    """The four reserved members' histories (see HISTORIES); transfers seeded."""
    started = time.perf_counter()
    connection = await asyncpg.connect(url)
    try:
        for member, count in zip(reserved, HISTORIES, strict=True):
            await seed_history(connection, member, HOT_PARTNER, count)
        await analyze(connection)
    finally:
        await connection.close()
    elapsed = time.perf_counter() - started
    print(f"  seeded {sum(HISTORIES)} transfers in {elapsed:.1f} s", flush=True)
    return sum(HISTORIES)


async def history_pairs(
    connection: HttpConnection,
    database: asyncpg.Connection,
    gateway: Gateway,
    reserved: list[Member],
    options: Options,
    rng: random.Random,
    run: GatewayRun,
) -> None:
    """The earn and wallet-read pairs for the reserved members, seeded already."""
    short, long, small, large = reserved
    total = options.pair_warmup + options.pairs
    sides = []
    for member, label in ((short, "short"), (long, "long")):
        earns = [
            Earn(HOT_PARTNER, member, rng.randint(1, 1000), f"history-{label}-{index:06d}")
            for index in range(total)
        ]
        run.earns.extend(earns)
        sides.append(earn_requests(gateway.port, gateway.token, earns))
    labels = (f"{HISTORIES[0]:,} earlier", f"{HISTORIES[1]:,} earlier")
    pair = await run_pair("earn", labels, connection, (sides[0], sides[1]), options.pair_warmup)
    run.pairs["earn"] = pair
    reads = []
    for member in (small, large):
        balance = await database.fetchval(WALLET_BALANCE, member.uuid, HOT_PARTNER)
        reads.append(wallet_requests(gateway.port, gateway.token, member, balance, total))
    labels = (f"{HISTORIES[2]:,} entries", f"{HISTORIES[3]:,} entries")
    run.pairs["wallet read"] = await run_pair(
        "wallet read", labels, connection, (reads[0], reads[1]), options.pair_warmup
    )


async def gateway_scenarios(
    database: Database,
    options: Options,
    rng: random.Random,
    monitor: Monitor,
    work_dir: str,
) -> GatewayRun:
    """Enrol the members, the spread and hot earns, then the history pairs; the gateway is
    stopped after."""
    connections: list[HttpConnection] = []
    async with running_gateway(database, work_dir, options.workers) as gateway:
        monitor.gateway_pids = gateway.tree
        try:
            connections, balanced = await open_connections(gateway, options.concurrency)
            owners = await connection_owners(gateway, connections)
            spread = spread_line(gateway, owners, len(connections), balanced)
            print(f"  {spread}", flush=True)
            # Four skyway members only for the history pairs, no other earn touches them:
            # their histories are seeded while the others enrol (neither is timed).
            port, token = gateway.port, gateway.token
            reserved = await enrol_all(connections, port, token, 4, (HOT_PARTNER,), "history")
            seeding = asyncio.create_task(seed_reserved(database.url, reserved[HOT_PARTNER]))
            try:
                members = await enrol_all(connections, port, token, options.members)
            finally:
                seeded = await seeding
            run = GatewayRun(members, {}, {}, [], seeded, gateway.env, [], spread, 0)
            attempts = [gateway_attempt(connection) for connection in connections]
            for name, hot in (("gateway spread", False), ("gateway hot", True)):
                prefix = name.replace(" ", "-")
                work = workload(rng, members, hot, prefix, options.warmup, options.requests)
                run.earns.extend(work.warmup + work.timed)
                warmup = earn_calls(gateway.port, gateway.token, work.warmup)
                timed = earn_calls(gateway.port, gateway.token, work.timed)
                run.results[name] = await measure(name, attempts, warmup, timed, monitor)
            await history_pairs(
                connections[0],
                monitor.connection,
                gateway,
                reserved[HOT_PARTNER],
                options,
                rng,
                run,
            )
        finally:
            monitor.gateway_pids = []
            for connection in connections:
                await connection.close()
    run.reopened = sum(connection.reopened for connection in connections)
    run.log_problems = log_problems(gateway.log_path)
    return run


def trace_earns(run: GatewayRun) -> list[Earn]:
    """One earn per partner, for a member whose wallet there holds points already (a new
    wallet's balance would equal the points, and the template could not tell them apart)."""
    earns = []
    for partner in PARTNERS:
        member = next(earn.member for earn in run.earns if earn.partner == partner)
        earns.append(Earn(partner, member, TRACE_POINTS, f"trace-{partner}"))
    return earns


async def direct_scenarios(
    database: Database,
    options: Options,
    rng: random.Random,
    run: GatewayRun,
    monitor: Monitor,
) -> tuple[dict[str, Result], list[str]]:
    traced = trace_earns(run)
    trace = await trace_postings(run.env, traced)
    run.earns.extend(traced)
    isolation = trace.templates[HOT_PARTNER].isolation or "the server's default"
    described = [
        "direct sends, per earn, what the gateway sent in the transaction that "
        f"posted its traced earn ({HOT_PARTNER}; bench/trace.py):",
        f"  in one transaction: BEGIN (isolation {isolation}) ... COMMIT",
        *describe(trace.templates[HOT_PARTNER]),
        "statements the traced earn request sent in all (posting, reads, work after): "
        + ", ".join(f"{p} {n}" for p, n in trace.statements_per_request.items()),
    ]
    results: dict[str, Result] = {}
    connections = [await asyncpg.connect(database.url) for _ in range(options.concurrency)]
    try:
        attempts = [direct_attempt(connection, trace.templates) for connection in connections]
        for name, hot in (("direct spread", False), ("direct hot", True)):
            prefix = name.replace(" ", "-")
            work = workload(rng, run.members, hot, prefix, options.warmup, options.requests)
            run.earns.extend(work.warmup + work.timed)
            results[name] = await measure(name, attempts, work.warmup, work.timed, monitor)
    finally:
        for connection in connections:
            await connection.close()
    return results, described


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
            direct, described = await direct_scenarios(database, options, rng, gateway, monitor)
        results = gateway.results | direct
        checking = time.perf_counter()
        ledger = await check_ledger(monitor_connection, gateway.earns, gateway.seeded)
        print(f"  ledger checked in {time.perf_counter() - checking:.1f} s", flush=True)
    finally:
        await monitor_connection.close()
    print_report(
        Report(
            header(options, database.name, version, programme_line()),
            results,
            gateway.pairs,
            described,
            gateway.spread,
            gateway.reopened,
            gateway.log_problems,
            ledger,
        )
    )
    failed = sum(len(result.failures) for result in results.values())
    failed += sum(len(pair.failures) for pair in gateway.pairs.values())
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
