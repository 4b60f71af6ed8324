"""A minimal asyncio HTTP/1.1 client: keep-alive, Content-Length bodies, one request at a time.

Requests are serialised before the clock starts and an answer is read with two buffered
reads, so the client takes little CPU from the gateway and PostgreSQL (httpx took about
2 ms per request).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from contextlib import suppress
from typing import Any

HOST = "127.0.0.1"
REQUEST_TIMEOUT = 30.0


class ProtocolProblem(Exception):
    """The gateway answered in a way this client does not handle: the run stops."""


def graphql_request(
    port: int, token: str, query: str, variables: dict[str, Any] | None = None
) -> bytes:
    """A complete POST /graphql with ``token`` as its bearer token, ready to write."""
    document: dict[str, Any] = {"query": query}
    if variables is not None:
        document["variables"] = variables
    body = json.dumps(document, separators=(",", ":")).encode()
    return (
        b"POST /graphql HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
        b"Content-Type: application/json\r\nAccept: application/graphql-response+json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (HOST.encode(), port, token.encode(), len(body), body)
    )


def parse_head(head: bytes) -> tuple[int, int, bool]:
    """Status, Content-Length and whether the server will close, from a response head."""
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    if version != "HTTP/1.1" or not rest[:3].isdigit():
        raise ProtocolProblem(f"not an HTTP/1.1 status line: {status_line!r}")
    length: int | None = None
    close = False
    for line in header_lines:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding":
            raise ProtocolProblem(f"Transfer-Encoding: {value.strip()} (only Content-Length)")
        elif name == "connection":
            close = "close" in value.lower()
    if length is None:
        raise ProtocolProblem(f"a response without Content-Length: {head[:300]!r}")
    return int(rest[:3]), length, close


class HttpConnection:
    """One keep-alive connection, one request at a time; reopened when the server closed it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reopened = 0

    @property
    def local_port(self) -> int:
        assert self.writer is not None
        port: int = self.writer.get_extra_info("sockname")[1]
        return port

    async def open(self) -> HttpConnection:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        self.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    async def close(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()

    async def exchange(self, request: bytes) -> tuple[float, int, bytes]:
        """Write ``request``, read the whole answer: seconds taken, status and body."""
        reader, writer = self.reader, self.writer
        if reader is None or writer is None or reader.at_eof():
            # Closed by the server while idle (keep-alive timeout): not part of a request.
            await self.close()
            await self.open()
            self.reopened += 1
            reader, writer = self.reader, self.writer
            assert reader is not None and writer is not None
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status, length, close = parse_head(head)
                body = await reader.readexactly(length)
                took = time.perf_counter() - started
        except BaseException:
            await self.close()  # in an unknown state: never reuse it
            raise
        if close:
            await self.close()
        return took, status, body


async def fetch_once(port: int, request: bytes) -> tuple[int, bytes, HttpConnection]:
    """One request on a new connection; the connection is returned open, to inspect."""
    connection = await HttpConnection(port).open()
    try:
        _, status, body = await connection.exchange(request)
    except BaseException:
        await connection.close()
        raise
    return status, body, connection
