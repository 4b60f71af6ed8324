"""Bulk earning: purchases per second through ``earnPointsBulk`` next to the same rows posted
directly with asyncpg, in the same run.

Usage, from the repository root with PostgreSQL on 127.0.0.1:5432 (user postgres, trust)::

    .venv/bin/python -m bench.bulk [--purchases 10000] [--members 1000] [--batches 3]

The database is ``BENCH_DATABASE_URL`` with ``_bulk`` appended (``coalition_bench_bulk`` by
default), reset at the start (DROP SCHEMA public CASCADE) and migrated by the gateway.

1. Starts the gateway in-process (the ASGI app with its lifespan, real HTTP through httpx's
   ASGI transport, the demo configuration) and enrols ``--members`` members at skyway (not
   timed).
2. Per batch, alternating so that neither side always runs on a warmer database:
   - **gateway**: one ``earnPointsBulk`` call with ``--purchases`` purchases
     (``purchase: {amount}``: the earning rules, the purchase row, the breakdown), timed from
     the request to the parsed answer;
   - **direct**: the same rows posted with asyncpg: ``bench.bulk_sql.post_earn`` (a hand
     copy of the gateway's SQL for an earn before issue 11: member lock, transfer, wallet,
     entries) and the purchase
     row with its breakdown, one transaction each, on one connection, timed from the first
     BEGIN to the last COMMIT.
3. Prints purchases per second for each, and their ratio; checks every line succeeded and
   the ledger balances (``coalition audit``'s checks). Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import replace
from decimal import Decimal

import asyncpg  # type: ignore[import-untyped]  # ships no type information
import httpx

from bench.bulk_sql import DIRECT_SCOPE, issuance_accounts, post_earn
from bench.database import Database, prepare_database
from bench.workload import Earn, Member
from gateway.api.app import create_app
from gateway.api.graphql.scalars import encode_id
from gateway.api.settings import Settings
from gateway.ledger.audit import audit

BULK = """
mutation($input: EarnPointsBulkInput!) {
  earnPointsBulk(input: $input) { succeeded failed userErrors { code message } }
}"""
PARTNER = "skyway"


INSERT_PURCHASE = (
    "INSERT INTO purchases (transfer_id, member_id, partner, receipt, amount, points, "
    "breakdown, status, returned_amount, clawed_back, uncollected, created_at) "
    "SELECT id, member_id, partner, idempotency_key, $3, points, $4, 'available', '0', 0, 0, "
    "created_at FROM transfers WHERE idempotency_scope = $1 AND idempotency_key = $2"
)


async def record_purchase(connection: asyncpg.Connection, earn: Earn) -> None:
    """The purchase row the gateway stores with each earn, with its one-rule breakdown."""
    amount = str(Decimal(earn.points) / 2)
    breakdown = json.dumps([["base", "2 per unit spent", earn.points]])
    await connection.execute(
        INSERT_PURCHASE, f"{DIRECT_SCOPE}:{earn.partner}", earn.key, amount, breakdown
    )


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
        public_url="http://bench",
    )
    app = create_app(settings)
    failures = 0
    async with app.router.lifespan_context(app):
        service = app.state.service
        members = []
        for number in range(member_count):
            enrolled = await service.enrol(PARTNER, f"BULK-{number}")
            members.append(Member(encode_id("Member", enrolled.member.id), enrolled.member.id))
        token = await app.state.issuer.issue("bench", None, "operator")
        transport = httpx.ASGITransport(app=app)
        connection = await asyncpg.connect(database.url)
        issuance = await issuance_accounts(connection)
        print(f"bulk earning: {purchases} purchases per batch, {member_count} members")
        print(f"{'batch':>5} {'gateway /s':>12} {'direct /s':>12} {'ratio':>7}")
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", timeout=600
        ) as client:
            for batch in range(batches):
                lines = [
                    {
                        "member": {"id": members[i % member_count].global_id},
                        "idempotencyKey": f"b{batch}-{i}",
                        "purchase": {"amount": str(Decimal(10 + i % 90))},
                    }
                    for i in range(purchases)
                ]
                started = time.perf_counter()
                response = await client.post(
                    "/graphql",
                    json={
                        "query": BULK,
                        "variables": {"input": {"partner": PARTNER, "lines": lines}},
                    },
                    headers={"Authorization": f"Bearer {token}"},
                )
                gateway_seconds = time.perf_counter() - started
                answer = response.json()["data"]["earnPointsBulk"]
                if answer["failed"] or answer["userErrors"] or answer["succeeded"] != purchases:
                    print(f"  gateway batch {batch} failed: {answer}", file=sys.stderr)
                    failures += 1
                earns = [
                    Earn(PARTNER, members[i % member_count], 2 * (10 + i % 90), f"d{batch}-{i}")
                    for i in range(purchases)
                ]
                started = time.perf_counter()
                for earn in earns:
                    async with connection.transaction():
                        problem = await post_earn(connection, issuance, earn)
                        if not problem:
                            await record_purchase(connection, earn)
                    if problem:
                        failures += 1
                direct_seconds = time.perf_counter() - started
                gateway_rate = purchases / gateway_seconds
                direct_rate = purchases / direct_seconds
                print(
                    f"{batch:>5} {gateway_rate:>12.0f} {direct_rate:>12.0f} "
                    f"{gateway_rate / direct_rate:>7.2f}"
                )
        await connection.close()
        problems = await audit(service.engine)
        if problems:
            print("ledger audit failed:", *problems, sep="\n  ", file=sys.stderr)
            failures += 1
    print("ok" if not failures else f"{failures} failure(s)")
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
