"""The job runner (issue 11, item 4): `coalition jobs` runs alone and stops cleanly on
SIGTERM; a sweep runs in one runner at a time; serving runs the jobs unless told not to."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from gateway.api import jobs as wiring
from gateway.api.settings import Settings, SettingsError
from gateway.events.event import Event
from gateway.jobs.runner import JobRunner, Sweep
from gateway.kernel.database import create_engine
from gateway.kernel.unit_of_work import UnitOfWork
from gateway.ledger.records import MemberRef
from tests.conftest import Clock, Gateway, start_gateway


def test_coalition_jobs_runs_until_sigterm_and_stops_cleanly(tmp_path: Path) -> None:
    environ = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}",
        "COALITION_HOLD_SWEEP_SECONDS": "1",
    }
    runner = subprocess.Popen(
        [sys.executable, "-m", "gateway.api.cli", "jobs"],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert runner.stdout is not None
        started = runner.stdout.readline()  # printed once migrated and running
        assert started.startswith("Jobs running: "), started + runner.stdout.read()
        assert "holds.release_expired" in started and "points.expire" in started
        time.sleep(1.5)  # let a sweep run: stopping mid-work must be clean too
        runner.send_signal(signal.SIGTERM)
        output, _ = runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode == 0, output
    assert "Jobs stopped." in output
    assert "Traceback" not in output and "ERROR" not in output, output


@pytest.fixture
async def pg_gateway(pg_url: str, clock: Clock) -> AsyncIterator[Gateway]:
    async for gateway in start_gateway(pg_url, clock):
        yield gateway


async def test_two_runners_never_run_one_sweep_at_once(pg_gateway: Gateway, pg_url: str) -> None:
    other_engine = create_engine(pg_url)  # as another process would have
    try:
        running, release = asyncio.Event(), asyncio.Event()
        runs = 0

        async def sweep() -> None:
            nonlocal runs
            runs += 1
            running.set()
            await release.wait()

        work = Sweep("test.sweep", sweep, every=0)
        first = JobRunner(UnitOfWork(pg_gateway.service.engine), sweeps=[work])
        second = JobRunner(UnitOfWork(other_engine), sweeps=[work])
        async with asyncio.timeout(30):
            busy = asyncio.create_task(first.sweep(work))
            await running.wait()
            assert await second.sweep(work) is False  # the first one holds it
            release.set()
            assert await busy is True
            assert await second.sweep(work) is True  # its turn, now that it is free
        assert runs == 2
    finally:
        await other_engine.dispose()


async def test_serving_runs_the_jobs_unless_they_are_switched_off(
    database_url: str, clock: Clock
) -> None:
    async for gateway in start_gateway(database_url, clock, hold_sweep_seconds=30, jobs=True):
        runner = gateway.app.state.jobs
        assert isinstance(runner, JobRunner)
        assert "holds.release_expired" in [sweep.name for sweep in runner.sweeps]
    async for gateway in start_gateway(database_url, clock, jobs=False):
        assert gateway.app.state.jobs is None
    assert Settings.from_env({"COALITION_JOBS": "off"}).jobs is False
    with pytest.raises(SettingsError):
        Settings.from_env({"COALITION_EVENTS_POLL_SECONDS": "0"})


async def test_a_consumer_registered_with_the_server_gets_the_earns_it_serves(
    database_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, int | None]] = []

    class Counter:
        name = "test.counter"

        async def apply(self, connection: object, events: Sequence[Event]) -> None:
            seen.extend((event.type, event.points) for event in events)

    monkeypatch.setattr(wiring, "consumers", lambda service: [Counter()])
    async for gateway in start_gateway(database_url, clock):
        member = (await gateway.service.enrol("skyway", "C-1")).member.id
        await gateway.service.earn("skyway", MemberRef(id=member), "k", points=7)
        await gateway.settle_events()
        assert seen == [("member.enrolled", None), ("points.earned", 7)]


async def test_webhooks_are_sent_every_webhook_poll_seconds_unless_zero(
    database_url: str, clock: Clock
) -> None:
    async for gateway in start_gateway(
        database_url, clock, hold_sweep_seconds=30, jobs=True, webhook_poll_seconds=0.5
    ):
        runner = gateway.app.state.jobs
        (sweep,) = [sweep for sweep in runner.sweeps if sweep.name == "webhooks.send"]
        assert sweep.every == 0.5
        assert "webhooks.fanout" in [consumer.name for consumer in runner.consumers]
    async for gateway in start_gateway(
        database_url, clock, hold_sweep_seconds=30, jobs=True, webhook_poll_seconds=0
    ):
        assert "webhooks.send" not in [sweep.name for sweep in gateway.app.state.jobs.sweeps]
    assert Settings.from_env({}).webhook_poll_seconds == 1.0
    assert Settings.from_env({"COALITION_WEBHOOK_POLL_SECONDS": "0"}).webhook_poll_seconds == 0
    with pytest.raises(SettingsError):
        Settings.from_env({"COALITION_WEBHOOK_POLL_SECONDS": "-1"})
