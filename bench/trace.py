"""What the gateway sends to PostgreSQL for an earn, recorded from the gateway's own code.

The gateway is started in this process (``gateway.api.app.create_app`` with its lifespan, on
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
from gateway.api.app import create_app
from gateway.api.settings import Settings


@dataclass
class Transaction:
    isolation: str | None  # how the asyncpg adapter opened it (None: a plain BEGIN)
    statements: list[Recorded] = field(default_factory=list)


@dataclass
class Recorder:
    """Statements by connection while its transaction is open; committed ones kept."""

    open: dict[int, Transaction] = field(default_factory=dict)
    committed: list[Transaction] = field(default_factory=list)
    sent: int = 0  # every statement, in a transaction or not

    def begin(self, connection: Any) -> None:
        adapter = connection.connection.dbapi_connection
        self.open[id(connection)] = Transaction(getattr(adapter, "isolation_level", None))

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
        transaction = self.open.get(id(connection))
        if transaction is None:
            return  # outside a transaction (a pool's ping)
        # The asyncpg adapter's cursor holds the fetched rows until SQLAlchemy reads them.
        rows = [] if executemany else [tuple(row) for row in getattr(cursor, "_rows", ())]
        if executemany:
            sent: Any = [tuple(row) for row in parameters]
        else:
            sent = tuple(parameters or ())
        transaction.statements.append(Recorded(statement, sent, executemany, rows))

    def commit(self, connection: Any) -> None:
        transaction = self.open.pop(id(connection), None)
        if transaction is not None:
            self.committed.append(transaction)

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


def _sends(value: Any, key: str) -> bool:
    if isinstance(value, list | tuple):
        return any(_sends(item, key) for item in value)
    return isinstance(value, str) and value == key


def posting_of(recorder: Recorder, key: str) -> Transaction:
    """The first committed transaction that sent ``key`` as a parameter: the posting (work
    reacting to it, if any sends the key too, commits after it)."""
    for transaction in recorder.committed:
        if any(_sends(statement.parameters, key) for statement in transaction.statements):
            return transaction
    raise RuntimeError(f"no committed transaction sent the key {key!r}")


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
                templates[earn.partner] = build_template(
                    earn.partner, posting.statements, values, posting.isolation
                )
                counts[earn.partner] = recorder.sent
                recorder.committed.clear()
                recorder.sent = 0
    return Trace(templates, counts)
