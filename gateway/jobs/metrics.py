"""The job runner's metrics and log lines: a run is one consumer batch or one sweep."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Histogram

log = logging.getLogger("gateway.jobs")

JOB_RUNS = Counter(
    "coalition_job_runs",
    "Job runs by job, kind (consumer or sweep) and outcome (ok, failed, skipped: held by "
    "another runner).",
    ["job", "kind", "outcome"],
)
JOB_DURATION = Histogram(
    "coalition_job_duration_seconds",
    "Time a job run took (runs that did work, or failed).",
    ["job", "kind"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0),
)
EVENTS_APPLIED = Counter(
    "coalition_consumer_events_applied",
    "Events applied by each event consumer.",
    ["consumer"],
)


def consumer_ran(name: str, applied: int | None, seconds: float) -> None:
    """A consumer's batch: ``applied`` events, None when another runner holds it."""
    if applied is None:
        JOB_RUNS.labels(name, "consumer", "skipped").inc()
        return
    JOB_RUNS.labels(name, "consumer", "ok").inc()
    if applied:
        EVENTS_APPLIED.labels(name).inc(applied)
        JOB_DURATION.labels(name, "consumer").observe(seconds)
        log.info(
            "job run",
            extra={
                "job": name,
                "kind": "consumer",
                "outcome": "ok",
                "events": applied,
                "duration_ms": round(seconds * 1000, 2),
            },
        )


def sweep_ran(name: str, ran: bool, result: object, seconds: float) -> None:
    """A sweep's run; ``result`` is what it returned (a count, say): a run that found
    nothing to do (0, None, empty) is logged at debug level only, not to fill the log."""
    if not ran:
        JOB_RUNS.labels(name, "sweep", "skipped").inc()
        return
    JOB_RUNS.labels(name, "sweep", "ok").inc()
    JOB_DURATION.labels(name, "sweep").observe(seconds)
    fields: dict[str, object] = {
        "job": name,
        "kind": "sweep",
        "outcome": "ok",
        "duration_ms": round(seconds * 1000, 2),
    }
    if isinstance(result, int) and not isinstance(result, bool):
        fields["result"] = result
    log.log(logging.INFO if result else logging.DEBUG, "job run", extra=fields)


def job_failed(name: str, kind: str, seconds: float) -> None:
    JOB_RUNS.labels(name, kind, "failed").inc()
    JOB_DURATION.labels(name, kind).observe(seconds)
