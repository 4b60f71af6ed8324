"""`coalition serve` under a real uvicorn: migrates, loads the demo, answers over TCP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


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
        [sys.executable, "-m", "gateway.cli", "serve", "--no-access-log"],
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
    finally:
        server.terminate()
        server.wait(timeout=15)
