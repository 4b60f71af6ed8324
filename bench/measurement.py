"""Running a scenario from concurrent clients: latencies, failures, and the CPU and database
sessions it used."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import asyncpg  # type: ignore[import-untyped]  # ships no type information

from bench.client import ProtocolProblem
from bench.procfs import machine_cpu_seconds, process_cpu_seconds

T = TypeVar("T")

# Seconds taken and None when it worked, else what went wrong.
Attempt = Callable[[T], Awaitable[tuple[float, str | None]]]


async def drive(
    attempts: Sequence[Attempt[T]], items: Sequence[T]
) -> tuple[list[float], list[str]]:
    """Run the items from one worker per attempt (each its own connection)."""
    latencies: list[float] = []
    failures: list[str] = []
    pending = iter(items)

    async def worker(attempt: Attempt[T]) -> None:
        for item in pending:
            started = time.perf_counter()
            try:
                took, problem = await attempt(item)
            except ProtocolProblem:
                raise
            except Exception as error:
                took, problem = time.perf_counter() - started, f"{type(error).__name__}: {error}"
            latencies.append(took)
            if problem is not None:
                failures.append(f"{item}: {problem}")

    async with asyncio.TaskGroup() as group:
        for attempt in attempts:
            group.create_task(worker(attempt))
    return latencies, failures


@dataclass(frozen=True)
class Sample:
    at: float
    machine: float
    steal: float
    bench: float
    gateway: float
    sessions: int


@dataclass(frozen=True)
class Usage:
    """Cores busy on average over a scenario, and database sessions opened during it."""

    machine: float
    steal: float
    gateway: float
    bench: float
    sessions: int

    @classmethod
    def between(cls, before: Sample, after: Sample) -> Usage:
        span = after.at - before.at
        return cls(
            machine=(after.machine - before.machine) / span,
            steal=(after.steal - before.steal) / span,
            gateway=(after.gateway - before.gateway) / span,
            bench=(after.bench - before.bench) / span,
            sessions=after.sessions - before.sessions,
        )

    @property
    def other(self) -> float:
        return max(self.machine - self.gateway - self.bench, 0.0)


class Monitor:
    """Samples CPU from /proc and the database's session counter (pg_stat_database)."""

    def __init__(self, connection: asyncpg.Connection, database: str) -> None:
        self.connection = connection
        self.database = database
        self.gateway_pids: list[int] = []  # the gateway's process and its workers

    async def sample(self) -> Sample:
        sessions = await self.connection.fetchval(
            "SELECT sessions FROM pg_stat_database WHERE datname = $1", self.database
        )
        gateway = sum(process_cpu_seconds(pid) for pid in self.gateway_pids)
        machine, steal = machine_cpu_seconds()
        return Sample(
            time.perf_counter(), machine, steal, time.process_time(), gateway, int(sessions or 0)
        )


def percentile(latencies: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of latencies in seconds, in milliseconds (0 for none)."""
    if not latencies:
        return 0.0
    ordered = sorted(latencies)
    rank = max(math.ceil(fraction * len(ordered)) - 1, 0)
    return ordered[min(rank, len(ordered) - 1)] * 1000


@dataclass(frozen=True)
class Result:
    name: str
    latencies: list[float]
    elapsed: float
    failures: list[str]
    usage: Usage

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed

    def percentile(self, fraction: float) -> float:
        return percentile(self.latencies, fraction)

    def per_earn(self, cores: float) -> float:
        """Milliseconds of CPU per earn, from cores busy over the scenario."""
        return cores * self.elapsed / len(self.latencies) * 1000


async def measure(
    name: str,
    attempts: Sequence[Attempt[T]],
    warmup: Sequence[T],
    timed: Sequence[T],
    monitor: Monitor,
) -> Result:
    """The warm-up untimed, then the timed items; failures of both are counted."""
    _, warmup_failures = await drive(attempts, warmup)
    before = await monitor.sample()
    started = time.perf_counter()
    latencies, failures = await drive(attempts, timed)
    elapsed = time.perf_counter() - started
    usage = Usage.between(before, await monitor.sample())
    print(f"  {name}: {len(latencies)} earns in {elapsed:.1f} s", flush=True)
    return Result(name, latencies, elapsed, warmup_failures + failures, usage)
