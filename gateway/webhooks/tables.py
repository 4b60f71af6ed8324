"""Webhook endpoints, their deliveries and each delivery's attempts. Migration 0021.

``webhook_endpoints.secret`` holds the signing secret sealed (``gateway.kernel.sealing``,
context ``webhook_secret:<endpoint id>``), never in plain text; so does ``previous_secret``.
A delivery references the outbox event it carries (``event_id``; None for a test event): its
payload is rendered when it is sent. ``message_id`` is its ``webhook-id``, the same on every
retry and resend.
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.kernel.schema import BigId, Moment, metadata

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("partner", sa.String(32), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("event_types", sa.JSON, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("secret", sa.Text, nullable=False),
    # After a rotation the previous secret also signs until ``previous_until``.
    sa.Column("previous_secret", sa.Text, nullable=True),
    sa.Column("previous_until", Moment, nullable=True),
    sa.Column("created_at", Moment, nullable=False),
    sa.Column("updated_at", Moment, nullable=False),
    # Migration 0023: the first failed try since the last 2xx answer (None while it answers),
    # and why the gateway disabled the endpoint (None if a person did, or while enabled).
    sa.Column("failing_since", Moment, nullable=True),
    sa.Column("disabled_reason", sa.String(200), nullable=True),
    sa.Index("ix_webhook_endpoints_partner", "partner", "id"),
    sqlite_autoincrement=True,
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "endpoint_id",
        sa.BigInteger,
        sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("message_id", sa.String(40), nullable=False, unique=True),
    sa.Column("event_id", sa.BigInteger, nullable=True),
    sa.Column("event_type", sa.String(40), nullable=False),
    sa.Column("member_id", sa.String(36), nullable=True),
    # Migration 0024: whose line it waits in at its endpoint; the member's, until a merge
    # moves the retired member's pending deliveries into the survivor's line.
    sa.Column("line_id", sa.String(36), nullable=True),
    sa.Column("occurred_at", Moment, nullable=False),
    sa.Column("status", sa.String(12), nullable=False),  # pending, delivered, failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", Moment, nullable=False),
    # The give-up clock: when created, or resent (a day of retries from then).
    sa.Column("retries_from", Moment, nullable=False),
    # None while an earlier delivery of its member to the endpoint is pending.
    sa.Column("next_attempt_at", Moment, nullable=True),
    sa.Column("lease_until", Moment, nullable=True),
    sa.Column("finished_at", Moment, nullable=True),
    sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    sa.Index("ix_webhook_deliveries_order", "endpoint_id", "line_id", "status", "id"),
    sa.Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
    sa.Index("ix_webhook_deliveries_finished", "finished_at"),
    sqlite_autoincrement=True,
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "delivery_id",
        sa.BigInteger,
        sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("attempted_at", Moment, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("response", sa.Text, nullable=True),  # the answer's first 2 KB
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Index("ix_webhook_attempts_delivery", "delivery_id", "id"),
    sqlite_autoincrement=True,
)
