"""Webhook metrics: each try's outcome, by partner (a slug: bounded by the coalition)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ATTEMPTS = Counter(
    "coalition_webhook_attempts",
    "Webhook tries by partner and outcome: delivered (2xx), retrying, failed (given up).",
    ["partner", "outcome"],
)
DISABLED = Counter(
    "coalition_webhook_endpoints_disabled",
    "Webhook endpoints the gateway disabled after every try at them failed for days.",
    ["partner"],
)
DURATION = Histogram(
    "coalition_webhook_attempt_seconds",
    "Time a webhook try took, answer or not.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def attempted(partner: str, outcome: str, milliseconds: int) -> None:
    ATTEMPTS.labels(partner, outcome).inc()
    DURATION.observe(milliseconds / 1000)


def disabled(partner: str) -> None:
    DISABLED.labels(partner).inc()
