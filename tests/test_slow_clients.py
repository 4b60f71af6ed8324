"""Slow clients against a real `coalition serve` (uvicorn) over TCP: headers or a body sent a
byte at a time get 408 and a closed connection instead of holding it open."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.test_serve import free_port

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    port = free_port()
    database = Path(tmp_path_factory.mktemp("slow")) / "slow.db"
    environ = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "PORT": str(port),
        "HTTP_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "HTTP_BODY_TIMEOUT": str(BODY_TIMEOUT),
        "COALITION_HOLD_SWEEP_SECONDS": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.api.cli", "serve", "--no-access-log"],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "the gateway did not start in 30 s"
            time.sleep(0.2)
        yield "127.0.0.1", port
    finally:
        process.terminate()
        process.wait(timeout=15)


def trickle(address: tuple[str, int], head: bytes, tail: bytes, limit: float = 8.0):
    """Send ``head`` at once, then ``tail`` a byte every 0.1 s; return what the server
    answered and how long after ``head`` it closed the connection (``limit`` if never)."""
    with socket.create_connection(address, timeout=limit) as connection:
        connection.sendall(head)
        started = time.monotonic()
        connection.settimeout(0.1)
        received = b""
        for byte in tail:
            if time.monotonic() - started > limit:
                break
            try:
                connection.sendall(bytes([byte]))
            except OSError:  # the server closed its end
                break
            try:
                chunk = connection.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            received += chunk
            if not chunk:
                break
        connection.settimeout(max(limit - (time.monotonic() - started), 0.1))
        try:
            while chunk := connection.recv(4096):
                received += chunk
        except (TimeoutError, OSError):
            return received, limit
        return received, time.monotonic() - started


def test_headers_sent_byte_by_byte_are_cut_off(server: tuple[str, int]):
    received, closed_after = trickle(
        server, b"POST /graphql HTTP/1.1\r\n", b"X-Slow: " + b"a" * 200 + b"\r\n"
    )
    assert closed_after < HEADER_TIMEOUT + 2
    assert received.startswith(b"HTTP/1.1 408 ")


def test_a_connection_that_sends_nothing_is_closed(server: tuple[str, int]):
    received, closed_after = trickle(server, b"", b"")
    assert closed_after < HEADER_TIMEOUT + 2
    assert received.startswith(b"HTTP/1.1 408 ")


def token(server: tuple[str, int]) -> str:
    host, port = server
    grant = httpx.post(
        f"http://{host}:{port}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=("skyway-app", "skyway-demo-secret"),
    )
    assert grant.status_code == 200, grant.text
    access_token: str = grant.json()["access_token"]
    return access_token


@pytest.mark.parametrize("path", ["/graphql", "/oauth/token"])
def test_a_body_sent_byte_by_byte_gets_408(server: tuple[str, int], path: str):
    if path == "/graphql":
        body = b'{"query": "{ partners { slug } }"}' + b" " * 200
        headers = b"Content-Type: application/json\r\n"
        headers += b"Authorization: Bearer " + token(server).encode() + b"\r\n"
    else:
        body = b"grant_type=client_credentials&client_id=skyway-app&client_secret=" + b"x" * 200
        headers = b"Content-Type: application/x-www-form-urlencoded\r\n"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: gateway\r\nContent-Length: {len(body)}\r\n".encode()
        + headers
        + b"\r\n"
    )
    received, closed_after = trickle(server, head, body)
    assert closed_after < BODY_TIMEOUT + 2
    assert received.startswith(b"HTTP/1.1 408 "), received
    assert b'"code": "REQUEST_TIMEOUT"' in received
    assert received.count(b"HTTP/1.1") == 1


def test_prompt_clients_are_served_on_kept_alive_connections(server: tuple[str, int]):
    host, port = server
    with httpx.Client(base_url=f"http://{host}:{port}") as client:
        for _ in range(3):
            assert client.get("/healthz").json() == {"status": "ok"}
            time.sleep(HEADER_TIMEOUT * 0.7)  # idle between requests is not a slow header
        response = client.post("/graphql", json={"query": "{ partners { slug } }"})
        assert response.status_code == 401  # read in full, then refused as unauthenticated


def _upload_head(server: tuple[str, int], length: int) -> bytes:
    return (
        f"POST /imports/earns?partner=skyway HTTP/1.1\r\nHost: gateway\r\n"
        f"Content-Length: {length}\r\nContent-Type: text/csv\r\n"
        f"Authorization: Bearer {token(server)}\r\n\r\n"
    ).encode()


def test_an_upload_trickling_in_gets_408(server: tuple[str, int]):
    body = b"customer_id,idempotency_key,amount\n" + b"C-1,k-1,10.00\n" * 20
    received, closed_after = trickle(server, _upload_head(server, len(body)), body)
    assert closed_after < BODY_TIMEOUT + 2
    assert received.startswith(b"HTTP/1.1 408 "), received


def test_an_upload_arriving_steadily_may_take_longer_than_the_body_timeout(
    server: tuple[str, int],
):
    header = b"customer_id,idempotency_key,amount\n"
    lines = b"".join(b"C-%06d,slow-%06d,10.00\n" % (i, i) for i in range(20_000))
    body = header + lines
    chunks = [body[i : i + 100_000] for i in range(0, len(body), 100_000)]
    started = time.monotonic()
    with socket.create_connection(server, timeout=30) as connection:
        connection.sendall(_upload_head(server, len(body)))
        for chunk in chunks:  # about 200 KB/s: three times the least rate an upload keeps
            connection.sendall(chunk)
            time.sleep(0.5)
        received = connection.recv(4096)
    assert time.monotonic() - started > BODY_TIMEOUT * 2
    assert received.startswith(b"HTTP/1.1 202 "), received
