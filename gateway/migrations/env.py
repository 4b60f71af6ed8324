"""Alembic environment: migrations run on a connection the gateway hands over."""

from __future__ import annotations

from alembic import context

# Each package declares its tables on the shared metadata: import them all, so that the
# target metadata (what `alembic revision --autogenerate` compares) has every table.
import gateway.analytics.tables
import gateway.auth.tables
import gateway.challenges.tables
import gateway.configuration.tables
import gateway.earning.tables
import gateway.events.tables
import gateway.holds.tables
import gateway.imports.tables
import gateway.ledger.tables
import gateway.members.tables
import gateway.remote.tables
import gateway.rewards.tables
import gateway.settlement.tables
import gateway.tiers.tables
import gateway.webhooks.tables  # noqa: F401
from gateway.kernel.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `coalition migrate`, which supplies the connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
