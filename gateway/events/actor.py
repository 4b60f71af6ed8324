"""Who asked for what is happening: set by the entry points, read when events are appended.

GraphQL sets it from the caller's principal ("partner:<slug>", "member:<id>",
"operator:<sub>"), the CLI to "operator:cli:<user>", the job runner to "system:<job>" in
each job's own task. Unset: None.

``current_request`` is the HTTP request being served (set by the request middleware): its
id and the calling client go on the events it appends, and it counts them, so that the
audit trail knows a mutation's effects are recorded by its events. A mutable object: the
tasks a request starts copy the context and share it.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass

current_actor: ContextVar[str | None] = ContextVar("coalition_actor", default=None)


def set_actor(actor: str | None) -> None:
    """Record the actor for the rest of this task (and the tasks it starts)."""
    current_actor.set(actor)


@dataclass
class RequestTrace:
    request_id: str
    client_id: str | None = None  # the OAuth client of a partner app or operator client
    appended: int = 0  # events appended while serving it (committed or not)


current_request: ContextVar[RequestTrace | None] = ContextVar("coalition_request", default=None)


def begin_request(trace: RequestTrace) -> Token[RequestTrace | None]:
    return current_request.set(trace)


def end_request(token: Token[RequestTrace | None]) -> None:
    current_request.reset(token)
