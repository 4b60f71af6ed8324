"""A rate changed through GraphQL in one process is used by another gateway process (a real
`coalition serve` on the same PostgreSQL database) within seconds, and recorded."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from gateway.ledger.service import utcnow
from partners.config.coalition import DEMO_DIRECTORY
from tests.conftest import start_gateway
from tests.operations import ERRORS, payload
from tests.test_serve import free_port, fresh_database

SET_RULE = f"""
mutation($input: SetConversionRuleInput!) {{
  setConversionRule(input: $input) {{ change {{ number }} {ERRORS} }}
}}"""
ALICE = '{ memberByEnrolment(partner: "skyway", partnerCustomerId: "SKY-1001") { id } }'
QUOTE = """
query($member: ID!) {
  quoteConversion(input: {memberId: $member, fromPartner: "skyway", toPartner: "brewbar",
                          points: 1000}) { quote { rate receivedPoints } }
}"""
CHANGES = "{ configurationChanges(first: 1) { changedBy source lines } }"


async def query(
    base: str, token: str, document: str, variables: dict[str, Any] | None = None
) -> Any:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{base}/graphql",
            json={"query": document, "variables": variables or {}},
            headers={"authorization": f"Bearer {token}"},
            timeout=30,
        )
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body["data"]


async def quote(base: str, token: str, member: str) -> Any:
    return (await query(base, token, QUOTE, {"member": member}))["quoteConversion"]["quote"]


async def test_another_process_uses_a_new_rate_within_seconds(tmp_path: Path, pg_url: str):
    database = f"{pg_url}_workers"
    await fresh_database(database)
    async for gateway in start_gateway(database, utcnow, config_dir=str(DEMO_DIRECTORY)):
        port = free_port()
        environ = {**os.environ, "DATABASE_URL": database, "PORT": str(port)}
        log = tmp_path / "serve.log"
        with log.open("wb") as output:
            server = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "gateway.api.cli", "serve", "--no-access-log"),
                env=environ,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while "Application startup complete." not in log.read_text():
                assert server.returncode is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                await asyncio.sleep(0.3)
            async with httpx.AsyncClient() as client:
                grant = await client.post(
                    f"{base}/oauth/token",
                    data={"grant_type": "client_credentials"},
                    auth=("operator-console", "operator-demo-secret"),
                )
            token = grant.json()["access_token"]
            alice = (await query(base, token, ALICE))["memberByEnrolment"]["id"]
            before = (await query(base, token, QUOTE, {"member": alice}))["quoteConversion"][
                "quote"
            ]
            assert before == {"rate": "0.25", "receivedPoints": 245}

            rule = {
                "fromPartner": "skyway",
                "toPartner": "brewbar",
                "rate": "0.3",
                "feePercent": "2",
                "minPoints": 100,
                "maxPoints": 200000,
            }
            changed = payload(await gateway.gql(SET_RULE, {"input": rule}))
            assert changed["userErrors"] == [] and changed["change"]["number"] == 2
            started = time.monotonic()
            while True:
                found = await quote(base, token, alice)
                if found["rate"] == "0.3":
                    break
                assert time.monotonic() - started < 10, "the other process kept the old rate"
                await asyncio.sleep(0.2)
            assert found == {"rate": "0.3", "receivedPoints": 294}
            change = (await query(base, token, CHANGES))["configurationChanges"][0]
            assert change["changedBy"] == "operator:test-operator" and change["source"] == "api"
            assert any("rate 0.3" in line for line in change["lines"])
        finally:
            server.terminate()
            async with asyncio.timeout(30):
                await server.wait()
