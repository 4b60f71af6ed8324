"""Bulk earning: purchases per second through ``earnPointsBulk`` next to the same rows posted
directly, set-based, with asyncpg, in the same run.

Usage, from the repository root with PostgreSQL on 127.0.0.1:5432 (user postgres, trust)::

    .venv/bin/python -m bench.bulk [--purchases 10000] [--members 1000] [--batches 3]

The database is ``BENCH_DATABASE_URL`` with ``_bulk`` appended (``coalition_bench_bulk`` by
default), reset at the start (DROP SCHEMA public CASCADE) and migrated by the gateway.

1. Starts the gateway in-process (the ASGI app with its lifespan, real HTTP through httpx's
   ASGI transport, the demo configuration: its earning rules, tiers and challenges) and
   enrols ``--members`` members at skyway twice (not timed): one set for the gateway, one
   for the direct side, so that both sides post the same purchases to members in the same
   state (same balances, tiers, counters) and write the same rows.
2. Per batch, alternating which side goes first:
   - **gateway**: one ``earnPointsBulk`` call with ``--purchases`` purchases
     (``purchase: {amount}``), timed from the request to the parsed answer;
   - **direct**: the same purchases posted by ``bench.bulk_sql.post_batch`` (set-based, one
     transaction), timed from BEGIN to COMMIT.
3. Prints purchases per second for each and their ratio against the aim; checks every line
   succeeded, that both sides wrote the same number of rows to every table and the same
   points, and the ledger audit (``coalition audit``'s checks). Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import replace
from decimal import Decimal
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # ships no type information
import httpx

from bench.bulk_plan import DirectLine
from bench.bulk_sql import post_batch
from bench.database import Database, prepare_database
from bench.tables import count_rows, differences
from gateway.api.app import create_app
from gateway.api.graphql.scalars import encode_id
from gateway.api.settings import Settings
from gateway.challenges.service import ChallengeService
from gateway.ledger.audit import audit

BULK = """
mutation($input: EarnPointsBulkInput!) {
  earnPointsBulk(input: $input) { succeeded failed userErrors { code message } }
}"""
PARTNER = "skyway"
AIM_RATE = 10_000  # purchases per second through earnPointsBulk
AIM_RATIO = 0.5  # of the direct set-based posting


def amount(i: int) -> Decimal:
    """The i-th purchase's amount, the same on both sides."""
    return Decimal(10 + i % 90)


async def run(purchases: int, member_count: int, batches: int) -> int:
    base = Database.from_env()
    database = replace(
        base,
        url=base.url + "_bulk",
        gateway_url=base.gateway_url + "_bulk",
        name=base.name + "_bulk",
    )
    await prepare_database(database)
    settings = Settings(
        database_url=database.gateway_url,
        demo_data=False,
        hold_sweep_seconds=0,
        remote_retry_seconds=0,
        jobs=False,
        public_url="http://bench",
    )
    app = create_app(settings)
    failures: list[str] = []
    rates: list[tuple[float, float]] = []
    async with app.router.lifespan_context(app):
        service = app.state.service
        coalition = service.coalition
        # The configured challenges into their table (a job runner's consumer would do it).
        await ChallengeService(service).start()
        gateway_members, direct_members = [], []
        for number in range(member_count):
            enrolled = await service.enrol(PARTNER, f"BULK-G{number}")
            gateway_members.append(encode_id("Member", enrolled.member.id))
            enrolled = await service.enrol(PARTNER, f"BULK-D{number}")
            direct_members.append(enrolled.member.id)
        token = await app.state.issuer.issue("bench", None, "operator")
        transport = httpx.ASGITransport(app=app)
        connection = await asyncpg.connect(database.url)
        print(
            f"bulk earning: {purchases} purchases per batch, {member_count} members per side, "
            f"demo programme (earning rules, tiers, challenges)"
        )
        print(f"{'batch':>5} {'gateway /s':>12} {'direct /s':>12} {'ratio':>7}")
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", timeout=600
        ) as client:

            async def gateway_side(batch: int) -> tuple[float, dict[str, int]]:
                lines = [
                    {
                        "member": {"id": gateway_members[i % member_count]},
                        "idempotencyKey": f"b{batch}-{i}",
                        "purchase": {"amount": str(amount(i))},
                    }
                    for i in range(purchases)
                ]
                before = await count_rows(connection)
                started = time.perf_counter()
                response = await client.post(
                    "/graphql",
                    json={
                        "query": BULK,
                        "variables": {"input": {"partner": PARTNER, "lines": lines}},
                    },
                    headers={"Authorization": f"Bearer {token}"},
                )
                seconds = time.perf_counter() - started
                answer: dict[str, Any] = (response.json().get("data") or {}).get(
                    "earnPointsBulk"
                ) or {"errors": response.json().get("errors")}
                if answer.get("succeeded") != purchases or answer.get("userErrors"):
                    failures.append(f"gateway batch {batch}: {str(answer)[:500]}")
                return seconds, differences(before, await count_rows(connection))

            async def direct_side(batch: int) -> tuple[float, dict[str, int]]:
                lines = [
                    DirectLine(direct_members[i % member_count], f"d{batch}-{i}", amount(i))
                    for i in range(purchases)
                ]
                before = await count_rows(connection)
                posted = await post_batch(connection, coalition, PARTNER, lines, "operator:bench")
                if posted.posted != purchases or posted.failed or posted.replayed:
                    failures.append(
                        f"direct batch {batch}: {posted.posted} posted, "
                        f"failed {posted.failed[:5]}, replayed {posted.replayed[:5]}"
                    )
                return posted.seconds, differences(before, await count_rows(connection))

            for batch in range(batches):
                if batch % 2 == 0:
                    gateway_seconds, gateway_rows = await gateway_side(batch)
                    direct_seconds, direct_rows = await direct_side(batch)
                else:
                    direct_seconds, direct_rows = await direct_side(batch)
                    gateway_seconds, gateway_rows = await gateway_side(batch)
                gateway_rate = purchases / gateway_seconds
                direct_rate = purchases / direct_seconds
                rates.append((gateway_rate, direct_rate))
                print(
                    f"{batch:>5} {gateway_rate:>12.0f} {direct_rate:>12.0f} "
                    f"{gateway_rate / direct_rate:>7.2f}"
                )
                if gateway_rows != direct_rows:
                    tables = sorted(set(gateway_rows) | set(direct_rows))
                    failures.append(
                        f"batch {batch}: rows written differ: "
                        + ", ".join(
                            f"{t} gateway {gateway_rows.get(t, 0)} direct {direct_rows.get(t, 0)}"
                            for t in tables
                            if gateway_rows.get(t, 0) != direct_rows.get(t, 0)
                        )
                    )
        await connection.close()
        problems = await audit(service.engine)
        if problems:
            failures.append("ledger audit: " + "; ".join(problems))
    met = sum(g >= AIM_RATE and g / d >= AIM_RATIO for g, d in rates)
    print(
        f"aim: gateway >= {AIM_RATE:,}/s and >= {AIM_RATIO}x direct: met in {met} of "
        f"{len(rates)} batches (gateway best {max(g for g, _ in rates):,.0f}/s)"
    )
    print("checks: every line posted, same rows and points on both sides, ledger audit: ", end="")
    print("ok" if not failures else f"{len(failures)} failed")
    for failure in failures:
        print(f"check failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--purchases", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=3)
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.purchases, args.members, args.batches)))


if __name__ == "__main__":
    main()
