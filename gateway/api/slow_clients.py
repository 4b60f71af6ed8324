"""Time limits for clients that send a request slowly (a "slowloris" holds a connection open
by sending its headers or body a byte at a time).

- ``RequestBodyDeadline`` (ASGI middleware): a request's body must arrive within
  ``HTTP_BODY_TIMEOUT`` seconds of its headers, or the answer is 408 and the connection closes.
  An upload (a path under ``UPLOADS``: a partner's import file, up to hundreds of MB) gets
  more time as its body arrives: every byte adds ``1 / UPLOAD_RATE`` seconds, so an upload
  at ``UPLOAD_RATE`` or faster never runs out, and a trickle still does.
- ``HeaderDeadlineProtocol`` (uvicorn's HTTP protocol, which has no such limit of its own):
  a request's headers must arrive within ``HTTP_HEADER_TIMEOUT`` seconds of their first byte
  (of the connection, for the first request), or the connection gets 408 and is closed.
  Between requests uvicorn's keep-alive timeout (5 s) applies.

What a process cannot bound (slow readers of responses, the number of connections, TLS) is
left to the proxy in front: see infra/.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import ClassVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.api.settings import Settings


class RequestTimeout(Exception):
    """The client did not send its request body in time."""


UPLOADS = ("/imports/",)
UPLOAD_RATE = 64 * 1024  # bytes per second


class RequestBodyDeadline:
    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.seconds <= 0:
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        upload = str(scope.get("path", "")).startswith(UPLOADS)
        body_received = False
        response_started = False

        async def receive_in_time() -> Message:
            nonlocal body_received, deadline
            if body_received:  # e.g. waiting for http.disconnect: not bounded here
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout from None
            if upload:
                deadline += len(message.get("body", b"")) / UPLOAD_RATE
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_received = True
            return message

        async def send_tracked(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive_in_time, send_tracked)
        except RequestTimeout:
            if response_started:
                raise
            await self._request_timeout(send)

    async def _request_timeout(self, send: Send) -> None:
        error = {
            "message": f"The request body did not arrive within {self.seconds:g} s.",
            "extensions": {"code": "REQUEST_TIMEOUT"},
        }
        body = json.dumps({"errors": [error]}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 408, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _header_timeout_from_env() -> float:
    return Settings.from_env(os.environ).http_header_timeout


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request headers are late.

    Pass as ``uvicorn.run(..., http=HeaderDeadlineProtocol)``; each worker process reads
    ``HTTP_HEADER_TIMEOUT`` from the environment unless ``header_timeout`` is set."""

    header_timeout: ClassVar[float | None] = None
    TIMEOUT_RESPONSE = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: 27\r\nconnection: close\r\n\r\nRequest headers came late.\n"
    )

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if HeaderDeadlineProtocol.header_timeout is None:
            HeaderDeadlineProtocol.header_timeout = _header_timeout_from_env()
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._awaiting_headers():
            if self._header_timer is None:
                self._arm_header_timer()
        else:
            self._disarm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _awaiting_headers(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm_header_timer(self) -> None:
        seconds = HeaderDeadlineProtocol.header_timeout
        if seconds and not self.transport.is_closing():
            self._header_timer = self.loop.call_later(seconds, self._headers_late)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self._awaiting_headers() or self.transport.is_closing():
            return
        # After an answer given before its request's body was in (a refusal), the rest of
        # that body is late too: close without a second answer.
        if self.cycle is None or not self.cycle.more_body:
            self.transport.write(self.TIMEOUT_RESPONSE)
        self.transport.close()
