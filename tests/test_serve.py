"""`coalition serve` under a real uvicorn: migrates, loads the demo, answers over TCP."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx

from bench.auth import write_config
from tests.conftest import _create_database as create_database


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_serve_runs_the_demo_coalition(tmp_path: Path) -> None:
    port = free_port()
    environ = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        "PORT": str(port),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gateway.api.cli", "serve"],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline, "the gateway did not start in 30 s"
            time.sleep(0.2)
        refused = httpx.post(f"{base}/graphql", json={"query": "{ partners { slug } }"})
        assert refused.status_code == 401
        grant = httpx.post(
            f"{base}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("skyway-app", "skyway-demo-secret"),
        )
        assert grant.status_code == 200, grant.text
        response = httpx.post(
            f"{base}/graphql",
            json={
                "query": '{ memberByEnrolment(partner: "skyway", partnerCustomerId: "SKY-1001")'
                ' { wallet(partner: "skyway") { balance } } }'
            },
            headers={
                "accept": "application/graphql-response+json",
                "authorization": f"Bearer {grant.json()['access_token']}",
            },
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/graphql-response+json")
        assert response.json() == {"data": {"memberByEnrolment": {"wallet": {"balance": 840}}}}
        ide = httpx.get(f"{base}/graphql", headers={"accept": "text/html"})
        assert ide.status_code == 200 and "graphiql" in ide.text.lower()
        assert httpx.get(f"{base}/readyz").status_code == 200
        assert "coalition_graphql_requests_total" in httpx.get(f"{base}/metrics").text
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=15)
    # One readable line per request (the demo's format), uvicorn's own lines alike.
    lines = output.decode().splitlines()
    (logged,) = [line for line in lines if "request" in line and "status=401" in line]
    assert "caller=anonymous" in logged and "outcome=rejected" in logged
    assert any("[uvicorn.error]" in line and "startup complete" in line for line in lines)


def test_shutdown_does_not_wait_for_a_stuck_request_past_its_timeout(tmp_path: Path) -> None:
    port = free_port()
    environ = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
        "PORT": str(port),
        "COALITION_SHUTDOWN_TIMEOUT": "1",
        "HTTP_BODY_TIMEOUT": "120",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gateway.api.cli", "serve"],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/livez", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", port)) as stuck:
            # A request whose body never finishes: it would hold a shutdown for 120 s.
            stuck.sendall(
                b"POST /oauth/token HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: 100\r\n\r\ngrant_type="
            )
            time.sleep(0.5)
            started = time.monotonic()
            server.terminate()
            server.wait(timeout=30)
            assert time.monotonic() - started < 10
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


# Issue 10, item 9: with several workers the demo's development remote pool (Harbour Hotels)
# keeps one ledger, served once by `coalition serve` for all its workers.

HARBOUR_EARN = """
mutation($key: String!) {
  earnPoints(input: {partner: "harbour", member: {partnerCustomerId: "HH-4004"},
                     points: 1000, idempotencyKey: $key}) {
    wallet { balance } userErrors { code message }
  }
}"""


def test_several_workers_share_the_development_pool(tmp_path: Path, pg_url: str) -> None:
    database = f"{pg_url}_serve"
    asyncio.run(fresh_database(database))
    port = free_port()
    environ = {
        **os.environ,
        "DATABASE_URL": database,
        "COALITION_CONFIG_DIR": str(write_config(tmp_path / "config")),  # no development sign-in
        "PORT": str(port),
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "gateway.api.cli", "serve", "--workers", "2", "--no-access-log"],
            env=environ,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while log.read_text().count("Application startup complete.") < 2:  # both workers
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"the gateway did not start:\n{log.read_text()}"
            time.sleep(0.3)
        grant = httpx.post(
            f"{base}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("harbour-app", "harbour-demo-secret"),
        )
        assert grant.status_code == 200, grant.text
        headers = {"authorization": f"Bearer {grant.json()['access_token']}"}

        def stay(index: int) -> int:
            with httpx.Client() as client:  # a new connection: either worker may answer
                response = client.post(
                    f"{base}/graphql",
                    json={"query": HARBOUR_EARN, "variables": {"key": f"stay-{index}"}},
                    headers=headers,
                    timeout=30,
                )
            result = response.json()["data"]["earnPoints"]
            assert result["userErrors"] == [], result
            balance: int = result["wallet"]["balance"]
            return balance

        # Concurrent stays, so that both workers answer; one ledger gives each its own
        # balance after, from Carol's 12,000 hotel points up.
        with ThreadPoolExecutor(8) as pool:
            balances = sorted(pool.map(stay, range(16)))
        assert balances == [13_000 + 1_000 * index for index in range(16)]
        # Whichever worker answers, /metrics counts the requests of both.
        for _ in range(4):
            with httpx.Client() as client:
                scraped = client.get(f"{base}/metrics").text
            counted = [
                float(line.rsplit(" ", 1)[1])
                for line in scraped.splitlines()
                if line.startswith("coalition_graphql_requests_total{")
                and 'outcome="ok"' in line
                and 'operation="anonymous"' in line
            ]
            assert sum(counted) == 16, scraped
    finally:
        server.terminate()
        server.wait(timeout=30)


async def fresh_database(url: str) -> None:
    await create_database(url)
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await connection.close()
