"""Following the event log (issue 11, items 3 and 4): a consumer gets every event once, in
position order, even when transactions commit out of order; a batch that fails is redone
whole; two runners at once never apply an event twice; a failing consumer stops no other."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.events import log, outbox
from gateway.events.event import START, Event, NewEvent, Position
from gateway.events.followers import position
from gateway.jobs.runner import JobRunner
from gateway.kernel.database import create_engine
from gateway.kernel.unit_of_work import UnitOfWork
from tests.conftest import Clock, start_gateway

# What a consumer does, kept in the database: one row per event it applied. The key makes
# a second application of one event visible (the insert finds its row taken).
effects_metadata = sa.MetaData()
effects = sa.Table(
    "test_effects",
    effects_metadata,
    sa.Column("consumer", sa.String(100), primary_key=True),
    sa.Column("transaction_id", sa.BigInteger, primary_key=True),
    sa.Column("sequence", sa.BigInteger, primary_key=True),
    sa.Column("label", sa.String(40), nullable=False),
)


class Crash(Exception):
    pass


@dataclass
class Recorder:
    """A consumer that writes one effect row per event, in the batch's transaction."""

    name: str = "recorder"
    crash_at: int | None = None  # crash (once) on reaching this index of a batch
    block: asyncio.Event | None = None  # wait for this after the first effect of a batch
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    failing: bool = False
    calls: int = 0
    third_call: asyncio.Event = field(default_factory=asyncio.Event)
    duplicates: list[Position] = field(default_factory=list)

    async def apply(self, connection: AsyncConnection, events: Sequence[Event]) -> None:
        self.calls += 1
        if self.calls == 3:
            self.third_call.set()
        if self.failing:
            raise Crash(self.name)
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        for index, event in enumerate(events):
            if index == self.crash_at:
                self.crash_at = None
                raise Crash(f"{self.name} at {event.position}")
            statement = dialect.insert(effects).values(
                consumer=self.name,
                transaction_id=event.position.transaction,
                sequence=event.position.sequence,
                label=event.data["label"],
            )
            done = await connection.execute(statement.on_conflict_do_nothing())
            if done.rowcount != 1:
                self.duplicates.append(event.position)
            if index == 0 and self.block is not None:
                self.entered.set()
                await self.block.wait()


@pytest.fixture
async def engine(database_url: str, clock: Clock) -> AsyncIterator[AsyncEngine]:
    """A migrated database with an empty outbox and no effects."""
    async for gateway in start_gateway(database_url, clock):
        engine = gateway.service.engine
        async with engine.begin() as connection:
            await connection.run_sync(effects_metadata.create_all)
            await connection.execute(sa.delete(effects))
        yield engine


@pytest.fixture
async def pg_engine(pg_url: str, clock: Clock) -> AsyncIterator[AsyncEngine]:
    async for gateway in start_gateway(pg_url, clock):
        engine = gateway.service.engine
        async with engine.begin() as connection:
            await connection.run_sync(effects_metadata.create_all)
            await connection.execute(sa.delete(effects))
        yield engine


def ping(label: str) -> NewEvent:
    return NewEvent("test.ping", datetime(2026, 6, 1, tzinfo=UTC), data={"label": label})


async def post(engine: AsyncEngine, *labels: str) -> None:
    """Append one event per label, in one committed transaction."""
    async with engine.begin() as connection:
        await outbox.append(connection, [ping(label) for label in labels])


async def applied(engine: AsyncEngine, consumer: str = "recorder") -> list[str]:
    """The labels of the events ``consumer`` applied, in position order."""
    async with engine.connect() as connection:
        result = await connection.execute(
            sa.select(effects.c.label)
            .where(effects.c.consumer == consumer)
            .order_by(effects.c.transaction_id, effects.c.sequence)
        )
        return list(result.scalars())


async def readable(engine: AsyncEngine, count: int) -> None:
    """Wait until the log hands out ``count`` events: on PostgreSQL, until every transaction
    older than theirs has ended (another session's may still be running)."""
    async with asyncio.timeout(30):
        while True:
            async with engine.connect() as connection:
                if len(await log.read(connection, START, count + 1)) >= count:
                    return
            await asyncio.sleep(0.01)


async def until(read: Callable[[], Awaitable[list[str]]], expected: list[str]) -> None:
    async with asyncio.timeout(30):
        while True:
            if await read() == expected:
                return
            await asyncio.sleep(0.01)


async def stored(engine: AsyncEngine, consumer: str = "recorder") -> Position:
    async with engine.connect() as connection:
        return await position(connection, consumer)


async def test_an_event_committed_late_with_an_earlier_transaction_is_not_skipped(
    pg_engine: AsyncEngine,
):
    recorder = Recorder()
    runner = JobRunner(UnitOfWork(pg_engine), [recorder])
    await post(pg_engine, "first")
    await readable(pg_engine, 1)
    assert await runner.follow(recorder) == 1
    async with pg_engine.connect() as slow:
        # An older transaction: it has its transaction id before "late" is even posted,
        # and appends its event (with the higher row id) only after "late" committed.
        await slow.execute(sa.text("SELECT pg_current_xact_id()"))
        await post(pg_engine, "late")
        # "late" is committed, but an older transaction still runs: nothing is handed out,
        # or a reader remembering "late" would never see what the older one appends.
        assert await runner.follow(recorder) == 0
        await outbox.append(slow, [ping("early")])
        await slow.commit()
    async with asyncio.timeout(30):
        await runner.settle()
    assert await applied(pg_engine) == ["first", "early", "late"]
    assert recorder.duplicates == []


async def test_a_batch_that_fails_midway_is_redone_whole_without_doubling(
    engine: AsyncEngine,
):
    recorder = Recorder(crash_at=2)
    runner = JobRunner(UnitOfWork(engine), [recorder], batch=10)
    for label in ("a", "b", "c", "d", "e"):
        await post(engine, label)
    await readable(engine, 5)
    with pytest.raises(Crash):
        await runner.follow(recorder)
    # The two effects written before the crash went with it; the position did not move.
    assert await applied(engine) == []
    assert await stored(engine) == Position(0, 0)
    assert await runner.follow(recorder) == 5
    assert await applied(engine) == ["a", "b", "c", "d", "e"]
    assert recorder.duplicates == []
    assert await runner.follow(recorder) == 0


async def test_a_runner_stopped_mid_batch_leaves_it_to_be_redone(engine: AsyncEngine):
    blocker = Recorder(block=asyncio.Event())
    runner = JobRunner(UnitOfWork(engine), [blocker])
    await post(engine, "a", "b")
    await post(engine, "c")
    await readable(engine, 3)
    async with asyncio.timeout(30):
        follow = asyncio.create_task(runner.follow(blocker))
        await blocker.entered.wait()  # the first effect is written, the batch not finished
        follow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await follow
    assert await applied(engine) == []
    blocker.block = None
    assert await runner.follow(blocker) == 3
    assert await applied(engine) == ["a", "b", "c"]
    assert blocker.duplicates == []


async def test_two_runners_at_once_apply_every_event_once(pg_engine: AsyncEngine, pg_url: str):
    other_engine = create_engine(pg_url)  # as another process would have
    try:
        mine, theirs = Recorder(), Recorder()
        runners = [
            JobRunner(UnitOfWork(pg_engine), [mine], poll=0.01, batch=7),
            JobRunner(UnitOfWork(other_engine), [theirs], poll=0.01, batch=7),
        ]
        for runner in runners:
            runner.start()

        async def writer(name: str) -> None:
            for n in range(25):
                await post(pg_engine, *(f"{name}-{n}-{i}" for i in range(1 + n % 3)))

        await asyncio.gather(*(writer(name) for name in ("w1", "w2", "w3", "w4")))
        async with asyncio.timeout(60):
            await runners[0].settle()
            await runners[1].settle()
        for runner in runners:
            await runner.stop()
        expected = sorted(
            f"{w}-{n}-{i}"
            for w in ("w1", "w2", "w3", "w4")
            for n in range(25)
            for i in range(1 + n % 3)
        )
        assert sorted(await applied(pg_engine)) == expected
        assert mine.duplicates == [] and theirs.duplicates == []
    finally:
        await other_engine.dispose()


async def test_a_failing_consumer_is_retried_later_and_holds_up_no_other(
    pg_engine: AsyncEngine,
):
    good, bad = Recorder("good"), Recorder("bad", failing=True)
    runner = JobRunner(UnitOfWork(pg_engine), [bad, good], poll=0.01, max_backoff=0.05)
    runner.start()
    try:
        await post(pg_engine, "a", "b")
        await until(lambda: applied(pg_engine, "good"), ["a", "b"])
        async with asyncio.timeout(30):
            await bad.third_call.wait()  # three attempts, with pauses between
        assert await applied(pg_engine, "bad") == []
        assert await stored(pg_engine, "bad") == Position(0, 0)
        bad.failing = False  # whatever it needed is back: the next retry goes through
        await until(lambda: applied(pg_engine, "bad"), ["a", "b"])
    finally:
        await runner.stop()
    assert good.duplicates == [] and bad.duplicates == []
