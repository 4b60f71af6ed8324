"""Fault injection for the reference partner: the routes it scripts and the failure modes."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Literal, get_args

__all__ = [
    "BALANCE",
    "BY_KEY",
    "MODES",
    "REVERSAL",
    "ROUTES",
    "TRANSACTIONS",
    "Fault",
    "Faults",
    "Mode",
]

Mode = Literal[
    "error", "error_after", "timeout_before", "timeout_after", "duplicate", "replay_answer"
]
MODES: tuple[Mode, ...] = get_args(Mode)

BALANCE = "GET /members/{customer_id}/balance"
TRANSACTIONS = "POST /transactions"
REVERSAL = "POST /transactions/{id}/reversal"
BY_KEY = "GET /transactions/by-key/{idempotency_key}"
ROUTES = (BALANCE, TRANSACTIONS, REVERSAL, BY_KEY)
"""The names ``Faults.fail_next`` accepts: the contract's operations as method and template."""


@dataclass(frozen=True)
class Fault:
    """A failure to apply to one request: its ``mode`` and, for ``timeout_*``, the delay."""

    mode: Mode
    delay: float


class Faults:
    """Scripted failures for the next requests of a route, taken in the order they were added.

    Modes, each applying to one request (``times`` queues several):

    - ``error``: answer 500 without doing anything.
    - ``error_after``: do the work, then answer 500 (the caller cannot know it happened).
    - ``timeout_before``: wait ``delay`` seconds, then do the work and answer; a caller with a
      shorter timeout has given up, and the work lands while it retries or looks the key up.
    - ``timeout_after``: do the work, then wait ``delay`` seconds before answering.
    - ``duplicate``: the request is delivered twice (as by a retrying proxy): it is processed
      twice and the second answer, a replay, is returned.
    - ``replay_answer``: a buggy partner: do nothing and answer 200 with the body of the last
      successful answer on the same route, whatever request it was for (500 if there is none).
    """

    def __init__(self, delay: float = 1.0) -> None:
        self.delay = delay
        """Seconds the ``timeout_*`` modes wait unless ``fail_next`` gives another delay."""
        self._lock = threading.Lock()
        self._queued: dict[str, deque[Fault]] = {route: deque() for route in ROUTES}

    def fail_next(
        self, route: str, mode: Mode, *, times: int = 1, delay: float | None = None
    ) -> None:
        """Apply ``mode`` to the next ``times`` requests of ``route`` (one of ``ROUTES``)."""
        if route not in self._queued:
            raise ValueError(f"unknown route {route!r}; one of {', '.join(ROUTES)}")
        if mode not in MODES:
            raise ValueError(f"unknown fault mode {mode!r}; one of {', '.join(MODES)}")
        if times < 1:
            raise ValueError("times must be at least 1")
        fault = Fault(mode, self.delay if delay is None else delay)
        with self._lock:
            self._queued[route].extend([fault] * times)

    def pending(self) -> list[tuple[str, Mode]]:
        """The faults not yet applied, as (route, mode), in the order they will apply."""
        with self._lock:
            return [(route, f.mode) for route, queue in self._queued.items() for f in queue]

    def clear(self) -> None:
        """Drop every fault not yet applied."""
        with self._lock:
            for queue in self._queued.values():
                queue.clear()

    def take(self, route: str) -> Fault | None:
        """The fault for the request of ``route`` now arriving, removed from the queue."""
        with self._lock:
            queue = self._queued[route]
            return queue.popleft() if queue else None
