"""Limits that protect the gateway: query cost, statement timeout, a lost database session,
an exhausted connection pool."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import Clock, Gateway, _plain_dsn, start_gateway
from tests.operations import EARN
from tests.test_api import balances, earn, enrol

GQL = "application/graphql-response+json"
NESTED = "transfers(first: 100) { edges { node { member { transfers(first: 100) { edges { node { id } } } } } } }"  # noqa: E501
HISTORY = "query($id: ID!) { member(id: $id) { transfers(first: 5) { edges { node { id } } } } }"


async def post(gateway: Gateway, query: str, variables: dict[str, Any] | None = None):
    return await gateway.client.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"accept": GQL, "authorization": f"Bearer {await gateway.operator_token()}"},
    )


def only_error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert len(body["errors"]) == 1, body
    error: dict[str, Any] = body["errors"][0]
    return error


# --- 7: query cost ---------------------------------------------------------------------


async def test_a_query_over_the_cost_budget_is_refused_before_it_runs(gateway: Gateway):
    member = await enrol(gateway)
    await earn(gateway, member, 100, "r-1")
    aliases = " ".join(f"a{i}: {NESTED}" for i in range(30))
    started = time.monotonic()
    response = await post(
        gateway, "query($id: ID!) { member(id: $id) { " + aliases + " } }", {"id": member}
    )
    assert time.monotonic() - started < 2
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(GQL)
    assert "data" not in response.json()
    error = only_error(response)
    assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "cost": 912_031, "budget": 10_000}
    assert "912031" in error["message"] and "10000" in error["message"]
    # One alias nesting two pages of 100 is 100 x 100 transfers: also over.
    one = await post(
        gateway, "query($id: ID!) { member(id: $id) { " + NESTED + " } }", {"id": member}
    )
    assert only_error(one)["extensions"]["cost"] == 30_402


async def test_page_sizes_from_variables_defaults_and_fragments_count(gateway: Gateway):
    member = await enrol(gateway)
    nested = """query($id: ID!, $n: Int!) { member(id: $id) { ...History } }
      fragment History on Member { transfers(first: $n) { edges { node {
        ... on Transfer { member { transfers(first: $n) { edges { node { id } } } } } } } } }"""
    refused = await post(gateway, nested, {"id": member, "n": 100})
    assert refused.status_code == 400
    assert only_error(refused)["extensions"]["code"] == "QUERY_TOO_COSTLY"
    allowed = await post(gateway, nested, {"id": member, "n": 10})
    assert allowed.status_code == 200 and "errors" not in allowed.json(), allowed.text
    # Without `first`, the default page size (20) counts: about 20 x 20 x 3, under 10,000.
    defaults = "query($id: ID!) { member(id: $id) { transfers { edges { node { member { " + (
        "transfers { edges { node { id } } } } } } } } }"
    )
    assert (await post(gateway, defaults, {"id": member})).status_code == 200


@pytest.fixture
async def small_budget(tmp_path: Path) -> AsyncIterator[Gateway]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cost.db'}"
    async for gateway in start_gateway(url, Clock(), max_query_cost=100):
        yield gateway


async def test_the_budget_is_a_setting_and_default_pages_count(small_budget: Gateway):
    member = await enrol(small_budget)
    under = "query($id: ID!) { member(id: $id) { transfers { edges { node { id kind } } } } }"
    assert (await post(small_budget, under, {"id": member})).status_code == 200  # 1+1+20x4
    over = "query($id: ID!) { member(id: $id) { transfers { edges { node { id kind points } } } } }"
    error = only_error(await post(small_budget, over, {"id": member}))
    assert error["extensions"] == {"code": "QUERY_TOO_COSTLY", "cost": 102, "budget": 100}


# --- PostgreSQL faults -----------------------------------------------------------------


@asynccontextmanager
async def locked(url: str, table: str) -> AsyncIterator[asyncpg.Connection]:
    """Hold an exclusive lock on ``table``: the gateway's statements on it wait."""
    connection = await asyncpg.connect(_plain_dsn(url))
    try:
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        try:
            yield connection
        finally:
            await transaction.rollback()
    finally:
        await connection.close()


async def waiting_backend(admin: asyncpg.Connection) -> int:
    """The pid of the gateway's session waiting for our lock."""
    for _ in range(200):
        pid = await admin.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid() LIMIT 1"
        )
        if pid is not None:
            return int(pid)
        await asyncio.sleep(0.02)
    raise AssertionError("no gateway session waits for the lock")


async def terminate_others(url: str) -> int:
    """Kill every other session on the database (the gateway's pooled connections), and
    wait until they are gone."""
    others = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    admin = await asyncpg.connect(_plain_dsn(url))
    try:
        killed: int = await admin.fetchval(f"SELECT count(pg_terminate_backend(pid)) {others}")
        for _ in range(500):
            if not await admin.fetchval(f"SELECT count(*) {others}"):
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the gateway's event loop reads the closes
        return killed
    finally:
        await admin.close()


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[Gateway]:
    async for gateway in start_gateway(pg_url, Clock(), db_statement_timeout=1.0):
        yield gateway


async def test_a_statement_over_the_timeout_is_cancelled_with_a_code(pg: Gateway, pg_url: str):
    member = await enrol(pg)
    async with locked(pg_url, "transfers"):
        started = time.monotonic()
        response = await asyncio.wait_for(post(pg, HISTORY, {"id": member}), 10)
        assert time.monotonic() - started < 5
    error = only_error(response)
    assert error["extensions"]["code"] == "STATEMENT_TIMEOUT", error
    assert response.status_code == 503 and response.headers["retry-after"]
    assert (await post(pg, HISTORY, {"id": member})).status_code == 200


async def test_pooled_connections_the_server_dropped_are_replaced(pg: Gateway, pg_url: str):
    member = await enrol(pg)
    await earn(pg, member, 100, "r-1")
    assert await terminate_others(pg_url) >= 1
    result = await earn(pg, member, 50, "r-2")  # asserts no errors
    assert result["userErrors"] == [] and result["wallet"]["balance"] == 150


async def test_a_session_lost_mid_request_says_outcome_unknown(pg: Gateway, pg_url: str):
    member = await enrol(pg)
    variables = {
        "input": {
            "partner": "skyway",
            "member": {"id": member},
            "points": 70,
            "idempotencyKey": "r-lost",
        }
    }
    async with locked(pg_url, "transfers") as admin:
        request = asyncio.create_task(post(pg, EARN, variables))
        pid = await waiting_backend(admin)
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    response = await asyncio.wait_for(request, 10)
    error = only_error(response)
    assert error["extensions"]["code"] == "OUTCOME_UNKNOWN", error
    assert "same idempotency key" in error["message"]
    assert response.status_code == 503 and response.headers["retry-after"]
    # The retry with the same key is answered (posted once), on a connection that works.
    retry = await earn(pg, member, 70, "r-lost")
    assert retry["userErrors"] == [] and retry["wallet"]["balance"] == 70
    assert (await earn(pg, member, 70, "r-lost"))["idempotentReplay"] is True
    assert await balances(pg, member) == {"skyway": 70, "brewbar": 0, "freshmart": 0}


@pytest.fixture
async def tiny_pool(pg_url: str) -> AsyncIterator[Gateway]:
    async for gateway in start_gateway(pg_url, Clock(), db_pool_size=1, db_pool_timeout=0.5):
        yield gateway


async def test_a_request_waiting_too_long_for_a_connection_is_told_to_retry(
    tiny_pool: Gateway, pg_url: str
):
    member = await enrol(tiny_pool)
    async with locked(pg_url, "transfers") as admin:
        slow = asyncio.create_task(post(tiny_pool, HISTORY, {"id": member}))
        await waiting_backend(admin)  # the pool's only connection is now held
        started = time.monotonic()
        response = await asyncio.wait_for(post(tiny_pool, HISTORY, {"id": member}), 10)
        assert time.monotonic() - started < 3
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "2"
    assert only_error(response)["extensions"]["code"] == "SERVICE_BUSY"
    assert (await slow).status_code == 200
