"""The gateway in a subprocess: start, readiness of every worker, stop, and keep-alive
connections spread evenly over its workers."""

from __future__ import annotations

import asyncio
import ctypes
import json
import math
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.auth import (
    TOKEN_LIFETIME,
    Credentials,
    access_token,
    create_operator_client,
    token_request,
    write_config,
)
from bench.client import HOST, HttpConnection, fetch_once, graphql_request
from bench.database import Database
from bench.procfs import children_of, command_line, server_ends

ROOT = Path(__file__).resolve().parent.parent
HEALTH_TIMEOUT = 180.0  # a loaded 2-core machine took over 60 s to start two workers
STOP_TIMEOUT = 15.0
BALANCE_ATTEMPTS = 200
PROBE = "{ __typename }"
LOG_MARKERS = ("WARNING", "ERROR", "CRITICAL", "Traceback")


@dataclass
class Gateway:
    port: int
    pid: int
    log_path: Path
    servers: list[int]  # the processes that accept connections: the workers, or pid itself
    tree: list[int]  # pid and all its children, for CPU accounting
    token: str = ""  # the bench's operator access token, once the gateway answers
    env: dict[str, str] = field(default_factory=dict)  # what it runs with beyond os.environ


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def coalition_command() -> Path:
    command = Path(sys.executable).parent / "coalition"
    if not command.exists():
        raise SystemExit(f"{command} is missing: run with the project's .venv/bin/python")
    return command


def die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the bench dies, even by SIGKILL (Linux)."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def log_lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines()


def log_problems(path: Path) -> list[str]:
    """Warning and error lines; a traceback as its first line and its exception's."""
    problems: list[str] = []
    in_traceback = False
    for line in log_lines(path):
        if in_traceback and line and not line.startswith((" ", "\t")):
            in_traceback = False
            if not line.startswith(LOG_MARKERS):
                problems[-1] += f" ... {line}"
                continue
        if line.startswith(LOG_MARKERS):
            problems.append(line)
            in_traceback = line.startswith("Traceback")
    return problems


async def fetch_token(gateway: Gateway, credentials: Credentials) -> str:
    """An access token from the gateway's POST /oauth/token (any worker: they share keys)."""
    request = token_request(gateway.port, credentials)
    status, body, connection = await fetch_once(gateway.port, request)
    await connection.close()
    return access_token(status, body)


async def wait_ready(
    gateway: Gateway, process: asyncio.subprocess.Process, workers: int, credentials: Credentials
) -> None:
    """Wait for /healthz, take an access token, then wait until every worker process has
    answered a GraphQL request made with it.

    uvicorn's workers share one listening socket and each accepts only once its own
    start-up is done, so the first 200 says one worker is ready, not all of them. A fresh
    connection per probe, and /proc tells which worker accepted it.
    """
    deadline = time.monotonic() + HEALTH_TIMEOUT
    health = b"GET /healthz HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (HOST.encode(), gateway.port)
    healthy = False
    answered: set[int] = set()
    while time.monotonic() < deadline:
        if process.returncode is not None:
            tail = "\n".join(log_lines(gateway.log_path)[-40:])
            raise RuntimeError(f"the gateway exited with {process.returncode}:\n{tail}")
        if workers > 1 and len(gateway.servers) < workers:
            gateway.servers = [
                pid for pid in children_of(gateway.pid) if "spawn_main" in command_line(pid)
            ]
        try:
            if not healthy:
                status, _, connection = await fetch_once(gateway.port, health)
                await connection.close()
                healthy = status == 200
                if not healthy:
                    await asyncio.sleep(0.1)
                continue
            if not gateway.token:
                gateway.token = await fetch_token(gateway, credentials)
            probe = graphql_request(gateway.port, gateway.token, PROBE)
            status, body, connection = await fetch_once(gateway.port, probe)
            try:
                owner = server_ends(gateway.port, gateway.servers).get(connection.local_port)
            finally:
                await connection.close()
            if status == 200 and json.loads(body).get("data") == {"__typename": "Query"}:
                answered.add(owner or 0)
            if answered >= set(gateway.servers) and len(gateway.servers) == workers:
                gateway.tree = [gateway.pid, *children_of(gateway.pid)]
                return
            await asyncio.sleep(0.05)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            await asyncio.sleep(0.1)
    raise RuntimeError(
        f"no healthy gateway with {workers} worker(s) after {HEALTH_TIMEOUT:.0f} s "
        f"(healthy: {healthy}, workers answering: {len(answered)})"
    )


async def stop_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()


@asynccontextmanager
async def running_gateway(
    database: Database, work_dir: str, workers: int
) -> AsyncIterator[Gateway]:
    """The gateway in a subprocess on the demo configuration without sign-in, with an
    operator client, every worker ready and ``token`` set; terminated on the way out."""
    port = free_port()
    own = {
        "DATABASE_URL": database.gateway_url,
        "COALITION_DEMO_DATA": "false",
        "COALITION_CONFIG_DIR": str(write_config(Path(work_dir) / "config")),
        "COALITION_TOKEN_LIFETIME": str(TOKEN_LIFETIME),
    }
    env = {**os.environ, **own}
    credentials = await create_operator_client(coalition_command(), env)
    log_path = Path(work_dir) / "gateway.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            str(coalition_command()),
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        try:
            servers = [process.pid] if workers == 1 else []
            gateway = Gateway(port, process.pid, log_path, servers, [process.pid], env=own)
            await wait_ready(gateway, process, workers, credentials)
            yield gateway
        finally:
            await stop_process(process)


async def open_connections(gateway: Gateway, count: int) -> tuple[list[HttpConnection], int]:
    """``count`` keep-alive connections, as evenly spread over the workers as can be.

    Which worker accepts a connection is up to the kernel and to which worker is quickest
    to call accept(); a benchmark with a few long-lived connections can end up with most of
    them on one worker, which many clients in production would not. A connection on a
    worker holding more than its share is closed and opened again, a bounded number of
    times; also returned is how many times that took.
    """
    connections = [await HttpConnection(gateway.port).open() for _ in range(count)]
    if len(gateway.servers) < 2:
        return connections, 0
    fair = math.ceil(count / len(gateway.servers))
    for balanced in range(BALANCE_ATTEMPTS):
        owners = await connection_owners(gateway, connections)
        load = Counter(owners.values())
        crowded = [
            index
            for index, connection in enumerate(connections)
            if load[owners.get(connection.local_port, 0)] > fair
        ]
        if not crowded:
            return connections, balanced
        index = crowded[0]
        await connections[index].close()
        connections[index] = await HttpConnection(gateway.port).open()
    return connections, BALANCE_ATTEMPTS


async def connection_owners(gateway: Gateway, connections: list[HttpConnection]) -> dict[int, int]:
    """Client port -> worker pid; waits a moment for accept() to happen on the server."""
    ports = {connection.local_port for connection in connections}
    for _ in range(50):
        owners = server_ends(gateway.port, gateway.servers)
        if ports <= owners.keys():
            break
        await asyncio.sleep(0.01)
    return {port: pid for port, pid in owners.items() if port in ports}


def spread_line(gateway: Gateway, owners: dict[int, int], count: int, balanced: int) -> str:
    load = Counter(owners.values())
    shares = " + ".join(str(load[pid]) for pid in gateway.servers)
    unknown = count - sum(load.values())
    line = f"gateway: {len(gateway.servers)} worker(s), {count} connections spread {shares}"
    if balanced:
        line += f" ({balanced} reopened to spread them)"
    if unknown:
        line += f" ({unknown} not found in /proc)"
    return line
