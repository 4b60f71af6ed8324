"""Importing a file of earns: ``coalition import earns`` on a generated CSV, measured as a
partner's nightly run would see it, next to the same rows posted directly (set-based).

Usage, from the repository root with PostgreSQL on 127.0.0.1:5432 (user postgres, trust)::

    .venv/bin/python -m bench.imports [--lines 1000000] [--members 10000] [--batch-size 5000]

The database is ``BENCH_DATABASE_URL`` with ``_import`` appended, reset at the start.

1. Migrates (the gateway in-process, the demo configuration; challenges synced), enrols
   ``--members`` customers at skyway with set-based SQL (members, enrolments, their
   ``member.enrolled`` events), then ``coalition migrate`` (the command's own revision).
2. Writes a CSV of ``--lines`` earns to a temporary directory: enrolled customers, unique
   keys, amounts; one line in 1000 is bad (unknown customer, negative, not a number, none).
3. Runs ``coalition import earns FILE --partner skyway --report R`` as a subprocess
   (``DATABASE_URL`` the bench database): wall time, lines/s, the child's peak RSS.
   Checks: exit 0, the report lists exactly the bad lines, every good line posted once.
4. ``coalition audit`` (exit 0), then ``coalition jobs`` started: the time until every event
   consumer's position reaches the newest outbox event.
5. The baseline: the same file read and posted by ``bench.bulk_sql.post_batch`` in batches
   of the same size (its own idempotency scope), lines/s.

Prints the figures next to the aims (import < 3 min, < 300 MB, audit sound, consumers caught
up < 60 s). Exits 1 when a check fails (and, with ``--enforce-aims``, when an aim is missed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # ships no type information

from bench.bulk_plan import DirectLine
from bench.bulk_sql import post_batch
from bench.database import Database, prepare_database
from bench.import_file import customer_id, generate, read_rows, rejected_lines
from gateway.api.app import create_app
from gateway.api.jobs import consumers
from gateway.api.settings import Settings
from gateway.challenges.service import ChallengeService
from partners.config.coalition import Coalition

PARTNER = "skyway"
AIM_SECONDS = 180.0  # for AIM_LINES lines
AIM_LINES = 1_000_000
AIM_RSS_MB = 300.0
AIM_CATCH_UP = 60.0
ENROL = """
WITH c AS (
    SELECT customer, gen_random_uuid()::text AS id FROM unnest($1::varchar[]) AS c(customer)
), m AS (
    INSERT INTO members (id, created_at) SELECT id, $2 FROM c
), e AS (
    INSERT INTO enrolments (partner, customer_id, member_id, created_at)
    SELECT $3, customer, id, $2 FROM c
)
INSERT INTO outbox (type, member_id, partner, occurred_at, actor, data)
SELECT 'member.enrolled', id, $3, $2, 'system:bench',
    json_build_object('customer_id', customer, 'via', 'partner')
FROM c
"""
NEWEST_EVENT = "SELECT transaction_id, id FROM outbox ORDER BY transaction_id DESC, id DESC LIMIT 1"
POSITIONS = "SELECT name, transaction_id, sequence FROM consumer_positions"
SUMMARY = re.compile(r"(\d+) lines read, (\d+) posted, (\d+) replayed, (\d+) rejected")


@dataclass
class Child:
    code: int
    seconds: float
    peak_rss_mb: float
    stdout: str
    stderr: str


def run_child(command: list[str], env: dict[str, str], log: Path) -> Child:
    """Run ``command`` to its end: exit code, wall time, its own peak RSS (wait4's
    ru_maxrss, KiB on Linux), its output (stderr kept in ``log``)."""
    started = time.perf_counter()
    with log.open("w") as errors, tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        stdout = out.read()
    return Child(process.returncode, seconds, usage.ru_maxrss / 1024, stdout, log.read_text())


def start_child(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` in the background, its stderr into ``log``."""
    with log.open("w") as errors:
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=errors)


async def prepare(database: Database, members: int) -> tuple[Coalition, list[str]]:
    """Migrate, sync the challenges, enrol the members; the coalition and consumer names."""
    settings = Settings(
        database_url=database.gateway_url,
        demo_data=False,
        hold_sweep_seconds=0,
        remote_retry_seconds=0,
        jobs=False,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        service = app.state.service
        coalition: Coalition = service.coalition
        if coalition.partners[PARTNER].earning.signup_bonus:
            raise SystemExit("the bench enrols with SQL: a sign-up bonus is not posted there")
        await ChallengeService(service).start()
        names = [consumer.name for consumer in consumers(service)]
    connection = await asyncpg.connect(database.url)
    try:
        now = datetime.now(UTC)
        for first in range(0, members, 50_000):
            chunk = [customer_id(n) for n in range(first, min(first + 50_000, members))]
            await connection.execute(ENROL, chunk, now, PARTNER)
    finally:
        await connection.close()
    return coalition, names


async def posted_earns(database: Database, scope: str) -> int:
    connection = await asyncpg.connect(database.url)
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM transfers WHERE idempotency_scope = $1", scope
        )
        return count
    finally:
        await connection.close()


async def catch_up(database: Database, names: list[str], jobs: subprocess.Popen[bytes]) -> float:
    """Seconds until every consumer's position reaches the newest event (polled every 0.1 s;
    the newest is read again each time: consumers may append events of their own)."""
    started = time.perf_counter()
    connection = await asyncpg.connect(database.url)
    try:
        while True:
            newest = await connection.fetchrow(NEWEST_EVENT)
            positions = {
                row["name"]: (row["transaction_id"], row["sequence"])
                for row in await connection.fetch(POSITIONS)
            }
            target = (newest["transaction_id"], newest["id"]) if newest else (0, 0)
            if all(positions.get(name, (0, 0)) >= target for name in names):
                return time.perf_counter() - started
            if jobs.poll() is not None:
                raise RuntimeError(f"coalition jobs exited with {jobs.returncode}")
            if time.perf_counter() - started > 20 * AIM_CATCH_UP:
                return float("inf")
            await asyncio.sleep(0.1)
    finally:
        await connection.close()


async def baseline(database: Database, coalition: Coalition, path: Path, batch: int) -> float:
    """Seconds to read the file and post its good rows with ``post_batch`` (members resolved
    from one read of the enrolments), one transaction per batch."""
    started = time.perf_counter()
    connection = await asyncpg.connect(database.url)
    try:
        members = {
            row["customer_id"]: row["member_id"]
            for row in await connection.fetch(
                "SELECT customer_id, member_id FROM enrolments WHERE partner = $1", PARTNER
            )
        }
        for rows, _ in read_rows(path, batch):
            lines = [
                DirectLine(members[row.customer_id], row.key, row.amount, row.reason)
                for row in rows
                if row.customer_id in members
            ]
            if lines:
                await post_batch(connection, coalition, PARTNER, lines, "system:bench")
    finally:
        await connection.close()
    return time.perf_counter() - started


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


async def _caught_up(
    database: Database,
    names: list[str],
    jobs: subprocess.Popen[bytes],
    folder: Path,
    failures: list[str],
) -> float:
    """Seconds until every consumer reached the newest event; then ``jobs`` is stopped."""
    try:
        return await catch_up(database, names, jobs)
    except RuntimeError as error:
        failures.append(f"{error}: {(folder / 'jobs.log').read_text()[-1500:]}")
        return float("inf")
    finally:
        jobs.terminate()
        jobs.wait(30)


async def run(args: argparse.Namespace) -> int:
    base = Database.from_env()
    database = replace(
        base,
        url=base.url + "_import",
        gateway_url=base.gateway_url + "_import",
        name=base.name + "_import",
    )
    coalition_command = [args.coalition]
    env = {**os.environ, "DATABASE_URL": database.gateway_url, "COALITION_DEMO_DATA": "false"}
    env.pop("COALITION_CONFIG_DIR", None)  # the demo configuration
    await prepare_database(database)
    started = time.perf_counter()
    coalition, names = await prepare(database, args.members)
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-import-") as directory:
        folder = Path(directory)
        migrate = run_child([*coalition_command, "migrate"], env, folder / "migrate.log")
        if migrate.code:
            raise SystemExit(f"coalition migrate failed:\n{migrate.stderr[-2000:]}")
        seconds = time.perf_counter() - started
        print(f"prepared: {args.members:,} members enrolled ({seconds:.1f} s)")
        path, report = folder / "earns.csv", folder / "rejected.csv"
        started = time.perf_counter()
        with path.open("w", newline="", encoding="utf-8") as out:
            generated = generate(out, args.lines, args.members)
        size = path.stat().st_size / 1e6
        print(
            f"file: {generated.lines:,} lines, {generated.bad:,} bad, {size:.1f} MB "
            f"(written in {time.perf_counter() - started:.1f} s)"
        )
        command = [
            *coalition_command,
            *("import", "earns", str(path), "--partner", PARTNER, "--report", str(report)),
            *("--batch-size", str(args.batch_size)),
        ]
        # With --jobs-during, the consumers run alongside the import, as a server's or a
        # `coalition jobs` process do in production; caught up is timed from its end.
        during = None
        if args.jobs_during:
            during = start_child([*coalition_command, "jobs"], env, folder / "jobs.log")
        imported = run_child(command, env, folder / "import.log")
        caught_up = float("inf")
        if during is not None:
            caught_up = await _caught_up(database, names, during, folder, failures)
        if imported.code:
            failures.append(f"import exited with {imported.code}: {imported.stderr[-1500:]}")
        print(imported.stdout.strip())
        summary = SUMMARY.search(imported.stdout)
        rejected = rejected_lines(report)
        if rejected != generated.bad:
            failures.append(f"the report lists {rejected} lines, {generated.bad} were bad")
        if summary is not None and int(summary.group(4)) != generated.bad:
            failures.append(f"the import rejected {summary.group(4)}, {generated.bad} were bad")
        posted = await posted_earns(database, f"earn:{PARTNER}")
        if posted != generated.lines - generated.bad:
            failures.append(f"{posted} earns posted, {generated.lines - generated.bad} expected")
        audit = run_child([*coalition_command, "audit"], env, folder / "audit.log")
        if audit.code:
            failures.append(f"coalition audit exited with {audit.code}: {audit.stdout[-1500:]}")
        if not args.jobs_during:
            jobs = start_child([*coalition_command, "jobs"], env, folder / "jobs.log")
            caught_up = await _caught_up(database, names, jobs, folder, failures)
        base_seconds = None
        if not args.no_baseline:
            base_seconds = await baseline(database, coalition, path, args.batch_size)
    rate = generated.lines / imported.seconds
    aims = {
        # < 3 min for 1,000,000 lines: the same rate for another number of lines
        "time": rate >= AIM_LINES / AIM_SECONDS,
        "memory": imported.peak_rss_mb < AIM_RSS_MB,
        "catch-up": caught_up < AIM_CATCH_UP,
    }
    print(f"{'':<26} {'measured':>14} {'aim':>12}")
    limit = AIM_SECONDS * generated.lines / AIM_LINES
    print(f"{'import wall time':<26} {imported.seconds:>12.1f} s {'< ' + f'{limit:.0f} s':>12}")
    print(
        f"{'import lines/s':<26} {rate:>14,.0f} {'>= ' + f'{AIM_LINES / AIM_SECONDS:,.0f}':>12} "
        f"{verdict(aims['time'])}"
    )
    print(
        f"{'import peak RSS':<26} {imported.peak_rss_mb:>11.0f} MB {'< 300 MB':>12} "
        f"{verdict(aims['memory'])}"
    )
    print(f"{'rejected (report)':<26} {rejected:>14,} {generated.bad:>12,} ", end="")
    print(verdict(rejected == generated.bad))
    print(f"{'coalition audit':<26} {'exit ' + str(audit.code):>14} {'exit 0':>12} ", end="")
    print(verdict(audit.code == 0))
    print(
        f"{'consumers caught up':<26} {caught_up:>12.1f} s {'< 60 s':>12} "
        f"{verdict(aims['catch-up'])}"
    )
    if base_seconds is not None:
        base_rate = generated.lines / base_seconds
        print(
            f"{'direct set-based baseline':<26} {base_rate:>14,.0f} lines/s "
            f"({base_seconds:.1f} s; import {rate / base_rate:.2f}x of it)"
        )
    for failure in failures:
        print(f"check failed: {failure}", file=sys.stderr)
    missed = [name for name, ok in aims.items() if not ok]
    print("checks:", "ok" if not failures else f"{len(failures)} failed", end="; ")
    print("aims:", "met" if not missed else "missed " + ", ".join(missed))
    return 1 if failures or (args.enforce_aims and missed) else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument(
        "--coalition",
        default=str(Path(sys.executable).parent / "coalition"),
        help="the coalition command to run (default: this environment's)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the direct baseline")
    parser.add_argument(
        "--jobs-during",
        action="store_true",
        help="run `coalition jobs` alongside the import (as in production) rather than after",
    )
    parser.add_argument("--enforce-aims", action="store_true", help="exit 1 on a missed aim")
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
