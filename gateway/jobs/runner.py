"""The job runner: follows every registered consumer and runs every sweep.

Consumers: each in its own task, polling every ``poll`` seconds while idle and at once
again after a full batch. A consumer whose ``apply`` raises is logged and retried after a
growing pause (up to ``max_backoff``); the others go on. Several runners (processes or
servers with jobs on) may run at once: a consumer is held by one runner at a time (see
``gateway.events.followers``).

Sweeps: each in its own task, every ``every`` seconds; on PostgreSQL under an advisory lock
held while it runs, so that two runners never run the same sweep at once (the lock's
transaction writes nothing, so it holds back no event). The sweeps themselves are safe to
repeat. The runner knows neither: the composition root registers them (``wiring``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from gateway.events.actor import set_actor
from gateway.events.event import Consumer, Position, batch_size
from gateway.events.followers import DEFAULT_BATCH, follow, position, try_lock
from gateway.events.log import latest
from gateway.jobs import metrics
from gateway.kernel.unit_of_work import UnitOfWork

log = logging.getLogger("gateway.jobs")

SWEEP_LOCKS = 727276  # the advisory-lock class of sweeps (the objid: the name's CRC)


@dataclass(frozen=True)
class Sweep:
    name: str  # stable: names its lock, and its actor ("system:<name>") on what it posts
    run: Callable[[], Awaitable[object]]
    every: float  # seconds between runs in one runner


class JobRunner:
    def __init__(
        self,
        uow: UnitOfWork,
        consumers: Sequence[Consumer] = (),
        sweeps: Sequence[Sweep] = (),
        *,
        poll: float = 0.2,
        batch: int = DEFAULT_BATCH,
        max_backoff: float = 60.0,
    ) -> None:
        names = [consumer.name for consumer in consumers]
        if len(set(names)) != len(names):
            raise ValueError(f"consumer names must be unique: {names}")
        self.uow = uow
        self.consumers = tuple(consumers)
        self.sweeps = tuple(sweeps)
        self.poll = poll
        self.batch = batch
        self.max_backoff = max_backoff
        self._tasks: list[asyncio.Task[None]] = []

    # One step each (the loops below, and tests)

    async def follow(self, consumer: Consumer) -> int | None:
        """One batch for ``consumer``: how many events it applied; None if held elsewhere."""
        start = time.perf_counter()
        try:
            applied = await follow(self.uow, consumer, self._limit(consumer))
        except Exception:
            metrics.job_failed(consumer.name, "consumer", time.perf_counter() - start)
            raise
        metrics.consumer_ran(consumer.name, applied, time.perf_counter() - start)
        return applied

    def _limit(self, consumer: Consumer) -> int:
        """Events per batch: the consumer's ``batch_size``, else the runner's ``batch``."""
        return batch_size(consumer, self.batch)

    async def catch_up(self) -> int:
        """Apply every event readable now to every consumer; how many were applied
        (consumers held by another runner are left to it)."""
        total = 0
        for consumer in self.consumers:
            while (applied := await self.follow(consumer)) is not None and applied > 0:
                total += applied
        return total

    async def settle(self) -> None:
        """Return once every consumer has applied every event committed before the call
        (applying them here, or waiting for the runner that holds a consumer): for tests
        and for operators who need "everything so far is applied". A transaction held open
        elsewhere delays it (see ``gateway.events.log``): callers bound it with
        ``asyncio.timeout``."""
        target = await self.uow.read(latest)
        if target is None:
            return
        for consumer in self.consumers:
            while await self._position(consumer.name) < target:
                if not await self.follow(consumer):
                    await asyncio.sleep(0.01)  # held elsewhere, or the log not yet readable

    async def _position(self, name: str) -> Position:
        return await self.uow.read(lambda connection: position(connection, name))

    async def sweep(self, sweep: Sweep) -> bool:
        """Run ``sweep`` once; False when another runner is running it."""
        start = time.perf_counter()
        try:
            ran, result = await self._sweep(sweep)
        except Exception:
            metrics.job_failed(sweep.name, "sweep", time.perf_counter() - start)
            raise
        metrics.sweep_ran(sweep.name, ran, result, time.perf_counter() - start)
        return ran

    async def _sweep(self, sweep: Sweep) -> tuple[bool, object]:
        engine = self.uow.engine
        if engine.dialect.name != "postgresql":
            return True, await sweep.run()
        async with engine.connect() as connection:
            if not await try_lock(connection, SWEEP_LOCKS, sweep.name):
                return False, None
            try:
                return True, await sweep.run()
            finally:
                await connection.rollback()  # ends the transaction: releases the lock

    # Running

    def start(self) -> None:
        """Start the loops as tasks of the running event loop."""
        if self._tasks:
            return
        for consumer in self.consumers:
            self._tasks.append(asyncio.create_task(self._consume(consumer)))
        for sweep in self.sweeps:
            if sweep.every > 0:
                self._tasks.append(asyncio.create_task(self._repeat(sweep)))

    async def stop(self) -> None:
        """Stop the loops; a batch in flight is rolled back (and redone by the next run)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set."""
        self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def _consume(self, consumer: Consumer) -> None:
        set_actor(f"system:{consumer.name}")
        failures = 0
        while True:
            try:
                applied = await self.follow(consumer)
            except Exception:
                failures += 1
                pause = min(self.poll * 2**failures, self.max_backoff)
                log.exception(
                    "consumer %s failed (%d in a row); retrying in %.1f s",
                    consumer.name,
                    failures,
                    pause,
                )
                await asyncio.sleep(pause)
                continue
            failures = 0
            if applied != self._limit(consumer):
                await asyncio.sleep(self.poll)

    async def _repeat(self, sweep: Sweep) -> None:
        set_actor(f"system:{sweep.name}")
        while True:
            await asyncio.sleep(sweep.every)
            try:
                await self.sweep(sweep)
            except Exception:
                log.exception("%s failed; trying again later", sweep.name)
