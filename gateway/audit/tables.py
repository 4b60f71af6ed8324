"""The audit trail's table. Migration 0020 creates it, with the triggers that refuse
UPDATE and DELETE: rows are only ever appended (``store`` has no update or delete)."""

from __future__ import annotations

import sqlalchemy as sa

from gateway.kernel.schema import BigId, Moment, metadata

audit_entries = sa.Table(
    "audit_entries",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("occurred_at", Moment, nullable=False),
    sa.Column("actor_kind", sa.String(20), nullable=False),  # see actors.ACTOR_KINDS
    sa.Column("actor", sa.String(200), nullable=False),  # "partner:skyway", "member:<id>", ...
    sa.Column("client_id", sa.String(64), nullable=True),  # the OAuth client, when one called
    sa.Column("action", sa.String(64), nullable=False),  # an event type or a mutation's name
    sa.Column("target_kind", sa.String(40), nullable=True),  # transfer, member, reward, ...
    sa.Column("target_id", sa.String(64), nullable=True),
    sa.Column("member_id", sa.String(36), nullable=True),  # the member it is about
    sa.Column("partner", sa.String(32), nullable=True),
    sa.Column("outcome", sa.String(10), nullable=False),  # ok, rejected, denied, failed
    sa.Column("detail", sa.String(200), nullable=True),  # short: error codes
    sa.Column("request_id", sa.String(128), nullable=True),
    sa.Column("source", sa.String(10), nullable=False),  # "event" (the outbox), "request" or "job"
    sa.Column("data", sa.JSON, nullable=False),  # small, never personal data
    sa.Index("ix_audit_entries_member", "member_id", "id"),
    sa.Index("ix_audit_entries_occurred_at", "occurred_at"),
    sa.Index("ix_audit_entries_target", "target_kind", "target_id"),
    sa.Index("ix_audit_entries_actor", "actor", "id"),
    sa.Index("ix_audit_entries_action", "action", "id"),
    sqlite_autoincrement=True,
)
