"""The outbox and the consumers' positions. Migration 0014 creates them.

``outbox`` is append-only: one row per event, written in the transaction of the posting it
records. ``transaction_id`` is the appending transaction's id on PostgreSQL (the column's
default, ``pg_current_xact_id()``, so the insert sends nothing for it), 0 on SQLite; with
``id`` it is the event's position (see ``gateway.events.log``).
``consumer_positions`` holds, per consumer, the position of the last event it applied.
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.kernel.schema import BigId, Moment, metadata

# PostgreSQL's 64-bit transaction id (xid8, epoch and xid) as a bigint.
CURRENT_TRANSACTION_SQL = "(pg_current_xact_id()::text::bigint)"
SNAPSHOT_XMIN_SQL = "(pg_snapshot_xmin(pg_current_snapshot())::text::bigint)"

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("transaction_id", sa.BigInteger, nullable=False),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("member_id", sa.String(36), nullable=True),
    sa.Column("partner", sa.String(32), nullable=True),
    sa.Column("transfer_id", sa.BigInteger, nullable=True),
    sa.Column("points", sa.BigInteger, nullable=True),
    sa.Column("occurred_at", Moment, nullable=False),
    sa.Column("actor", sa.Text, nullable=True),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("request_id", sa.String(128), nullable=True),  # the HTTP request's (0020)
    sa.Column("client_id", sa.String(64), nullable=True),  # the calling OAuth client (0020)
    sa.Index("ix_outbox_position", "transaction_id", "id"),
    sqlite_autoincrement=True,
)

consumer_positions = sa.Table(
    "consumer_positions",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("transaction_id", sa.BigInteger, nullable=False),
    sa.Column("sequence", sa.BigInteger, nullable=False),
)
