"""The webhook fan-out (the consumer ``webhooks.fanout``) against writing the same delivery
rows directly: how many events per second it turns into deliveries.

Usage, from the repository root with PostgreSQL on 127.0.0.1:5432 (user postgres, trust)::

    .venv/bin/python -m bench.webhooks [--batches 20] [--members 5000] [--endpoints 2]

The database is the one ``BENCH_DATABASE_URL`` names with ``_webhooks`` appended
(``coalition_bench_webhooks`` by default), created when missing and reset at the start of
every run (DROP SCHEMA public CASCADE; CREATE SCHEMA public), then migrated.

1. Registers ``--endpoints`` enabled endpoints of skyway listening to ``points.earned``, and
   gives a fifth of the ``--members`` a delivery pending at the first (a line their new
   deliveries must wait behind). Not timed.
2. fan-out: ``WebhookFanout.apply`` (the gateway's own code, on its engine) on
   ``--batches`` batches of the consumer's batch size (500) of ``points.earned`` events,
   each batch in its own transaction as the job runner runs it; a third of each batch's
   events are for a member already earlier in the batch. The first two batches warm up and
   are not counted.
3. direct: the same number of delivery rows per batch written with one ``COPY`` per batch on
   asyncpg (the floor: no lookup, no ordering rule).
4. Checks that every member's deliveries at each endpoint are in event order and that only
   each line's first delivery is due.

Prints events per second and milliseconds per batch for both, and their ratio. Exits 1
when the check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg  # type: ignore[import-untyped]  # ships no type information

from bench.database import Database, prepare_database
from gateway.events.event import Event, Position
from gateway.kernel.database import create_engine, migrate
from gateway.webhooks import store
from gateway.webhooks.fanout import WebhookFanout

NOW = datetime(2026, 12, 1, tzinfo=UTC)
WARMUP = 2
COLUMNS = (
    "endpoint_id", "message_id", "event_id", "event_type", "member_id", "occurred_at",
    "status", "attempts", "created_at", "retries_from", "next_attempt_at",
)  # fmt: skip


def batches(members: Sequence[str], count: int, size: int, seed: int) -> list[list[Event]]:
    """``count`` batches of ``size`` earn events; a third repeat a member of their batch."""
    chosen = random.Random(seed)
    found: list[list[Event]] = []
    sequence = 0
    for _ in range(count):
        batch: list[Event] = []
        for n in range(size):
            sequence += 1
            member = batch[-1].member_id if n % 3 == 2 else chosen.choice(members)
            at = NOW + timedelta(milliseconds=sequence)
            batch.append(
                Event(Position(0, sequence), "points.earned", member, "skyway", sequence, 5, at,
                      "partner:skyway")
            )  # fmt: skip
        found.append(batch)
    return found


def _rate(events: int, seconds: float) -> str:
    return f"{events / seconds:,.0f} events/s" if seconds else "-"


async def run(arguments: argparse.Namespace) -> int:
    database = Database.from_env().suffixed("_webhooks")
    await prepare_database(database)
    engine = create_engine(database.gateway_url)
    await migrate(engine)
    members = [str(uuid.uuid4()) for _ in range(arguments.members)]
    async with engine.begin() as connection:
        endpoints = [
            await store.add_endpoint(
                connection, "skyway", f"https://hooks{n}.example/", ["points.earned"], True, NOW
            )
            for n in range(arguments.endpoints)
        ]
        backlog = [
            store.NewDelivery(endpoints[0], None, "points.earned", member, NOW)
            for member in members[: len(members) // 5]
        ]
        await store.add_deliveries(connection, backlog, NOW)
    fanout = WebhookFanout(lambda: NOW)
    work = batches(members, arguments.batches, fanout.batch_size, arguments.seed)

    fanned: list[float] = []
    for batch in work:
        started = time.perf_counter()
        async with engine.begin() as connection:
            await fanout.apply(connection, batch)
        fanned.append(time.perf_counter() - started)
    await engine.dispose()

    direct: list[float] = []
    connection = await asyncpg.connect(database.url)
    try:
        problems = await check(connection)  # before the direct rows join them
        for batch in work:
            rows = [
                (endpoint, "msg_" + uuid.uuid4().hex, e.position.sequence, e.type, e.member_id,
                 e.occurred_at, "pending", 0, NOW, NOW, NOW)
                for e in batch
                for endpoint in endpoints
            ]  # fmt: skip
            started = time.perf_counter()
            async with connection.transaction():
                await connection.copy_records_to_table(
                    "webhook_deliveries", records=rows, columns=COLUMNS
                )
            direct.append(time.perf_counter() - started)
    finally:
        await connection.close()

    events = (len(work) - WARMUP) * fanout.batch_size
    gateway_seconds, direct_seconds = sum(fanned[WARMUP:]), sum(direct[WARMUP:])
    counted = len(work) - WARMUP
    fanned_ms = 1000 * gateway_seconds / counted
    direct_ms = 1000 * direct_seconds / counted
    print(
        f"{events:,} points.earned events to {len(endpoints)} endpoints, batches of "
        f"{fanout.batch_size}, {arguments.members:,} members (a fifth with a delivery pending):"
    )
    print(f"  fan-out  {_rate(events, gateway_seconds):>16}  {fanned_ms:7.1f} ms per batch")
    print(f"  direct   {_rate(events, direct_seconds):>16}  {direct_ms:7.1f} ms per batch (COPY)")
    print(f"  fan-out / direct: {direct_seconds / gateway_seconds:.2f}")
    for problem in problems:
        print(f"CHECK FAILED: {problem}")
    return 1 if problems else 0


async def check(connection: asyncpg.Connection) -> list[str]:
    """Each member's line at an endpoint is in event order, and only its first is due."""
    problems = []
    rows = await connection.fetch(
        "SELECT endpoint_id, member_id, event_id, next_attempt_at IS NOT NULL AS due "
        "FROM webhook_deliveries ORDER BY endpoint_id, member_id, id"
    )
    lines: dict[tuple[int, str], list[asyncpg.Record]] = {}
    for row in rows:
        lines.setdefault((row["endpoint_id"], row["member_id"]), []).append(row)
    for key, line in lines.items():
        ordered = [row["event_id"] for row in line if row["event_id"] is not None]
        if ordered != sorted(ordered):
            problems.append(f"{key}: deliveries out of event order")
        if [row["due"] for row in line] != [True] + [False] * (len(line) - 1):
            problems.append(f"{key}: not exactly the line's first delivery is due")
    return problems[:10]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--members", type=int, default=5000)
    parser.add_argument("--endpoints", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    arguments = parser.parse_args(argv)
    if arguments.batches <= WARMUP or arguments.members < 5 or arguments.endpoints < 1:
        parser.error(f"--batches > {WARMUP}, --members >= 5 and --endpoints >= 1")
    return asyncio.run(run(arguments))


if __name__ == "__main__":
    sys.exit(main())
