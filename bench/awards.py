"""The badge consumer catching up: ``challenges.awards`` events per second after bulk earning.

Usage, from the repository root with PostgreSQL on 127.0.0.1:5432 (user postgres, trust)::

    .venv/bin/python -m bench.awards [--events 100000] [--members 10000]

The database is ``BENCH_DATABASE_URL`` with ``_awards`` appended (``coalition_bench_awards``
by default), reset at the start (DROP SCHEMA public CASCADE) and migrated by the gateway.

1. Starts the gateway in-process with the demo configuration (its challenges ``explorer``:
   three partners in a month, and ``brewbar-regular``: five BrewBar visits in a month), its
   jobs off, and enrols ``--members`` members (not timed).
2. Posts ``--events`` earns at SkyWay, spread over the members, through the earning
   service's ``earn_bulk`` (10,000 lines a call), then for every tenth member one earn at
   BrewBar and one at FreshMart (they meet ``explorer``) and for every twentieth four more
   at BrewBar (they meet ``brewbar-regular`` too). Timed, for reference.
3. Times the consumer applying every event of the log (``JobRunner.settle``), and prints
   events per second; checks the badges given are exactly those met and the ledger balances
   (``coalition audit``'s checks). Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from dataclasses import replace

import sqlalchemy as sa

from bench.database import Database, prepare_database
from gateway.api.app import create_app
from gateway.api.settings import Settings
from gateway.challenges.awards import ChallengeAwards
from gateway.challenges.service import ChallengeService
from gateway.challenges.tables import challenge_awards
from gateway.earning.bulk import MAX_BULK, BulkLine
from gateway.earning.service import EarningService
from gateway.events.tables import outbox
from gateway.jobs.runner import JobRunner
from gateway.ledger.audit import audit
from gateway.ledger.records import MemberRef


async def post(earning: EarningService, partner: str, lines: list[BulkLine]) -> int:
    """The lines posted in calls of at most ``MAX_BULK``: how many failed."""
    failed = 0
    for at in range(0, len(lines), MAX_BULK):
        answers = await earning.earn_bulk(partner, lines[at : at + MAX_BULK])
        failed += sum(1 for answer in answers if isinstance(answer, Exception))
    return failed


async def run(event_count: int, member_count: int) -> int:
    base = Database.from_env()
    database = replace(
        base,
        url=base.url + "_awards",
        gateway_url=base.gateway_url + "_awards",
        name=base.name + "_awards",
    )
    await prepare_database(database)
    settings = Settings(
        database_url=database.gateway_url,
        demo_data=False,
        jobs=False,
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
            members.append((await service.enrol("skyway", f"AWARDS-{number}")).member.id)
        earning = EarningService(service)

        def line(key: str, member: str) -> BulkLine:
            return BulkLine(MemberRef(id=member), key, points=10)

        explorers = members[::10]
        regulars = members[::20]
        started = time.perf_counter()
        failed = await post(
            earning,
            "skyway",
            [line(f"s{i}", members[i % member_count]) for i in range(event_count)],
        )
        failed += await post(
            earning, "freshmart", [line(f"f{i}", m) for i, m in enumerate(explorers)]
        )
        brewbar = [line(f"b{i}", m) for i, m in enumerate(explorers)]
        brewbar += [line(f"r{i}-{n}", m) for n in range(4) for i, m in enumerate(regulars)]
        failed += await post(earning, "brewbar", brewbar)
        posting_seconds = time.perf_counter() - started
        if failed:
            print(f"{failed} earns failed", file=sys.stderr)
            failures += 1
        async with service.engine.connect() as connection:
            appended = await connection.scalar(sa.select(sa.func.count()).select_from(outbox))
        print(
            f"posted {appended} events for {member_count} members in {posting_seconds:.1f} s "
            f"({appended / posting_seconds:.0f}/s)"
        )

        consumer = ChallengeAwards(ChallengeService(service))
        runner = JobRunner(service.uow, [consumer])
        started = time.perf_counter()
        await runner.settle()
        await runner.settle()  # the bonuses' own events
        seconds = time.perf_counter() - started
        async with service.engine.connect() as connection:
            applied = await connection.scalar(sa.select(sa.func.count()).select_from(outbox))
        print(
            f"challenges.awards applied {applied} events in {seconds:.1f} s "
            f"({applied / seconds:.0f} events/s)"
        )

        async with service.engine.connect() as connection:
            rows = await connection.execute(
                sa.select(challenge_awards.c.challenge, challenge_awards.c.bonus_transfer_id)
            )
            given = Counter(str(row.challenge) for row in rows if row.bonus_transfer_id)
        expected = Counter({"explorer": len(explorers), "brewbar-regular": len(regulars)})
        print(f"badges given: {dict(given)}; expected {dict(expected)}")
        if given != expected:
            failures += 1
        problems = await audit(service.engine)
        if problems:
            print("ledger audit failed:", *problems, sep="\n  ", file=sys.stderr)
            failures += 1
    print("ok" if not failures else f"{failures} failure(s)")
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--members", type=int, default=10_000)
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.events, args.members)))


if __name__ == "__main__":
    main()
