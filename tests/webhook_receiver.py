"""A real webhook receiver for the tests: a Starlette app served by uvicorn on 127.0.0.1 in
the test's own event loop. It records every request and answers what the test scripts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.body)
        return found


Answer = Callable[[Received], Awaitable[int] | int]


@dataclass
class Receiver:
    base_url: str = ""
    received: list[Received] = field(default_factory=list)
    # Statuses to answer per path, in turn (then 204); or a function of the request.
    script: dict[str, list[int]] = field(default_factory=dict)
    answer: dict[str, Answer] = field(default_factory=dict)

    def url(self, path: str = "/hook") -> str:
        return self.base_url + path

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def _handle(self, request: Request) -> Response:
        received = Received(request.url.path, dict(request.headers), await request.body())
        self.received.append(received)
        status = 204
        if request.url.path in self.answer:
            outcome = self.answer[request.url.path](received)
            status = await outcome if not isinstance(outcome, int) else outcome
        elif self.script.get(request.url.path):
            status = self.script[request.url.path].pop(0)
        text = "" if status == 204 else f"answer {status} " + "x" * 3000
        return Response(text, status_code=status)


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = Starlette(routes=[Route("/{path:path}", found._handle, methods=["POST"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    found.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
                await asyncio.sleep(0.01)
        yield found
    finally:
        server.should_exit = True
        await task
        sock.close()
