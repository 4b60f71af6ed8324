"""Calls to remote partners' pools, counted by partner, operation and outcome."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

from partners.remote.exceptions import RemoteRefused, RemoteUnavailable

REMOTE_CALLS = Counter(
    "coalition_remote_calls",
    "Calls to remote partners' pools by partner, operation (credit, debit, balance) and "
    "outcome (ok; refused: a definite no; unavailable: outcome unknown, retried later; "
    "invalid: an answer or a request that did not make sense).",
    ["partner", "operation", "outcome"],
)
REMOTE_LATENCY = Histogram(
    "coalition_remote_call_duration_seconds",
    "Time a call to a remote partner's pool took, retries within the call included.",
    ["partner", "operation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


@contextmanager
def remote_call(partner: str, operation: str) -> Iterator[None]:
    start = time.perf_counter()
    outcome = "invalid"
    try:
        yield
        outcome = "ok"
    except RemoteRefused:
        outcome = "refused"
        raise
    except RemoteUnavailable:
        outcome = "unavailable"
        raise
    finally:
        REMOTE_CALLS.labels(partner, operation, outcome).inc()
        REMOTE_LATENCY.labels(partner, operation).observe(time.perf_counter() - start)
