"""What the gateway sends to PostgreSQL for an earn, recorded from the gateway's own code.

The gateway is started in this process (``gateway.app.create_app`` with its lifespan, on
the same configuration and database as the bench's gateway), and one ``earnPoints`` per
partner is sent through its ASGI app with an operator token. SQLAlchemy's engine events
record every statement each transaction sends (text, parameters, the rows it returned);
the transaction that claimed the earn's idempotency key is the posting, and becomes the
template bench/direct.py replays (see bench/replay.py). Statements outside that
transaction (reads for the answer, work after the posting) are not part of the baseline:
they are the gateway's own cost.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.engine import Engine

from bench.mutations import EARN, earn_problem
from bench.replay import Recorded, Template, Values, build_template, now
from bench.workload import Earn
from gateway.app import create_app
from gateway.settings import Settings


@dataclass
class Recorder:
    """Statements by connection while its transaction is open; committed ones kept."""

    open: dict[int, list[Recorded]] = field(default_factory=dict)
    committed: list[list[Recorded]] = field(default_factory=list)
    sent: int = 0  # every statement, in a transaction or not

    def begin(self, connection: Any) -> None:
        self.open[id(connection)] = []

    def after_execute(
        self,
        connection: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        self.sent += 1
        group = self.open.get(id(connection))
        if group is None:
            return  # outside a transaction (a pool's ping)
        # The asyncpg adapter's cursor holds the fetched rows until SQLAlchemy reads them.
        rows = [] if executemany else [tuple(row) for row in getattr(cursor, "_rows", ())]
        if executemany:
            sent: Any = [tuple(row) for row in parameters]
        else:
            sent = tuple(parameters or ())
        group.append(Recorded(statement, sent, executemany, rows))

    def commit(self, connection: Any) -> None:
        group = self.open.pop(id(connection), None)
        if group is not None:
            self.committed.append(group)

    def rollback(self, connection: Any) -> None:
        self.open.pop(id(connection), None)

    def listen(self) -> None:
        event.listen(Engine, "begin", self.begin)
        event.listen(Engine, "after_cursor_execute", self.after_execute)
        event.listen(Engine, "commit", self.commit)
        event.listen(Engine, "rollback", self.rollback)

    def stop(self) -> None:
        event.remove(Engine, "begin", self.begin)
        event.remove(Engine, "after_cursor_execute", self.after_execute)
        event.remove(Engine, "commit", self.commit)
        event.remove(Engine, "rollback", self.rollback)


def _mentions(value: Any, key: str) -> bool:
    if isinstance(value, list | tuple):
        return any(_mentions(item, key) for item in value)
    return isinstance(value, str) and key in value


def posting_of(recorder: Recorder, key: str) -> list[Recorded]:
    """The one committed transaction that sent ``key``."""
    found = [
        group
        for group in recorder.committed
        if any(_mentions(statement.parameters, key) for statement in group)
    ]
    if len(found) != 1:
        raise RuntimeError(f"{len(found)} committed transactions sent the key {key!r}, not 1")
    return found[0]


@dataclass(frozen=True)
class Trace:
    templates: dict[str, Template]
    statements_per_request: dict[str, int]  # all the earn request sent, by partner


async def trace_postings(env: Mapping[str, str], earns: Sequence[Earn]) -> Trace:
    """Send each earn (one per partner) through the in-process gateway and template the
    transaction that posted it."""
    settings = replace(
        Settings.from_env({**os.environ, **env}),
        hold_sweep_seconds=0,
        remote_retry_seconds=0,
        public_url="http://bench",
    )
    app = create_app(settings)
    templates: dict[str, Template] = {}
    counts: dict[str, int] = {}
    recorder = Recorder()
    async with app.router.lifespan_context(app):
        token = await app.state.issuer.issue("bench-trace", None, "operator")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for earn in earns:
                variables = {
                    "input": {
                        "partner": earn.partner,
                        "member": {"id": earn.member.global_id},
                        "idempotencyKey": earn.key,
                        "points": earn.points,
                    }
                }
                recorder.listen()
                try:
                    response = await client.post(
                        "/graphql",
                        json={"query": EARN, "variables": variables},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                finally:
                    recorder.stop()
                problem = earn_problem(response.status_code, response.content, earn)
                if problem is not None:
                    raise RuntimeError(f"the traced earn {earn} failed: {problem}")
                posting = posting_of(recorder, earn.key)
                values = Values(earn.member.uuid, earn.key, earn.points, now())
                templates[earn.partner] = build_template(earn.partner, posting, values)
                counts[earn.partner] = recorder.sent
                recorder.committed.clear()
                recorder.sent = 0
    return Trace(templates, counts)
