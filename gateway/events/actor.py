"""Who asked for what is happening: set by the entry points, read when events are appended.

GraphQL sets it from the caller's principal ("partner:<slug>", "member:<id>",
"operator:<sub>"), the CLI to "operator:cli:<user>", the job runner to "system:<job>" in
each job's own task. Unset: None.
"""

from __future__ import annotations

from contextvars import ContextVar

current_actor: ContextVar[str | None] = ContextVar("coalition_actor", default=None)


def set_actor(actor: str | None) -> None:
    """Record the actor for the rest of this task (and the tasks it starts)."""
    current_actor.set(actor)
