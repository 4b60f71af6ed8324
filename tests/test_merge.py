"""A merge racing postings: no point is lost, stranded on the retired member, or counted
twice. Postings to the retired member either finish before the merge moves the wallets or
land on the survivor."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from sqlalchemy.exc import DBAPIError

from gateway.api.graphql.scalars import decode_member_id
from gateway.kernel.unit_of_work import RETRYABLE_SQLSTATES, sqlstate
from gateway.ledger import locks
from tests.conftest import Gateway
from tests.operations import EARN, ENROL, payload
from tests.sso import Brands, as_browser, authorize, sign_in, start_sso

WALLETS = "query($id: ID!) { member(id: $id) { id wallets { partner { slug } balance } } }"
START = "mutation { startAccountLink { nonce userErrors { code } } }"
COMPLETE = """
mutation($token: String!) {
  completeAccountLink(input: {idToken: $token}) {
    member { id } mergedMemberIds userErrors { code message }
  }
}"""


async def balances(gateway: Gateway, member_id: str) -> dict[str, int]:
    body = await gateway.gql(WALLETS, {"id": member_id})
    return {w["partner"]["slug"]: w["balance"] for w in body["data"]["member"]["wallets"]}


async def test_earns_racing_a_merge_all_reach_the_survivor(sso: Gateway, brands: Brands):
    # B: BrewBar's customer BB-2002 with 100 stars. A: Alice, signed in at SkyWay.
    enrolled = payload(
        await sso.gql(ENROL, {"input": {"partner": "brewbar", "partnerCustomerId": "BB-2002"}})
    )
    b_id = enrolled["member"]["id"]
    brewbar = await sso.partner_token("brewbar")

    async def earn(key: str, member: dict[str, str], points: int) -> dict[str, object]:
        input = {"partner": "brewbar", "member": member, "points": points, "idempotencyKey": key}
        return payload(await sso.gql(EARN, {"input": input}, token=brewbar))

    assert (await earn("first", {"partnerCustomerId": "BB-2002"}, 100))["userErrors"] == []
    skyway_alice = brands.token("skyway", "alice-m", skyway_member="SKY-M")
    a_id = (await sso.gql("{ me { id } }", token=skyway_alice))["data"]["me"]["id"]
    assert a_id != b_id

    nonce = payload(await sso.gql(START, token=skyway_alice))["nonce"]
    brewbar_alice = brands.token("brewbar", "alice", nonce=nonce)

    async def link() -> dict[str, object]:
        await asyncio.sleep(0.05)
        return payload(await sso.gql(COMPLETE, {"token": brewbar_alice}, token=skyway_alice))

    async def worker(number: int) -> list[dict[str, object]]:
        # Sequential earns, half by customer id and half by member id, across the merge.
        member = {"partnerCustomerId": "BB-2002"} if number % 2 else {"id": b_id}
        return [await earn(f"race-{number}-{n}", member, 7) for n in range(12)]

    *batches, linked = await asyncio.gather(*(worker(n) for n in range(6)), link())
    assert linked["userErrors"] == [] and linked["mergedMemberIds"] == [b_id]
    assert all(result["userErrors"] == [] for batch in batches for result in batch)
    earned = 6 * 12 * 7

    survivor = await balances(sso, a_id)
    assert survivor["brewbar"] == 100 + earned
    # The retired id resolves to the survivor; its own wallet is empty for good.
    assert (await sso.gql(WALLETS, {"id": b_id}))["data"]["member"]["id"] == a_id
    retired = decode_member_id(b_id)
    assert retired is not None
    held = (await sso.service.wallets([retired]))[retired]
    assert [(w.pool, w.balance) for w in held] == [("brewbar", 0)]
    # A later earn by the retired id lands on the survivor too.
    assert (await earn("after", {"id": b_id}, 5))["userErrors"] == []
    assert (await balances(sso, a_id))["brewbar"] == 100 + earned + 5


# A merge of a survivor racing postings for the members merged into it before (issue 10, 16)

ME_ID = "{ me { id } }"
EARNS = 15  # per worker


@pytest.fixture
async def sso_pg(pg_url: str, brands: Brands) -> AsyncIterator[Gateway]:
    """The SSO gateway on PostgreSQL: row locks and deadlocks exist only there."""
    async for gateway in start_sso(pg_url, brands):
        yield gateway


@asynccontextmanager
async def browser(gateway: Gateway) -> AsyncIterator[Gateway]:
    """The gateway reached from a browser of its own (its own cookie jar)."""
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield Gateway(gateway.app, client, gateway.clock)


async def browser_member(gateway: Gateway) -> str:
    response = await as_browser(gateway, ME_ID)
    assert response.status_code == 200, response.text
    member_id: str = response.json()["data"]["me"]["id"]
    return member_id


def deadlocks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The transactions the gateway rolled back and ran again after a deadlock."""
    return [r.getMessage() for r in caplog.records if "40P01" in r.getMessage()]


async def test_earns_for_a_retired_member_racing_a_link_that_merges_its_survivor(
    sso_pg: Gateway, brands: Brands, caplog: pytest.LogCaptureFixture
):
    """A (BrewBar's BB-2002) was merged into B (Alice at SkyWay, SKY-1001). Carol (C) links
    Alice's SkyWay sign-in in her browser, merging B into C, while partners keep earning
    for A by its id and by BB-2002, and for B by SKY-1001. No deadlock, no failed answer,
    no 500, and every point ends with C."""
    gateway = sso_pg
    caplog.set_level(logging.INFO, logger="gateway.kernel.unit_of_work")
    enrolled = payload(
        await gateway.gql(ENROL, {"input": {"partner": "brewbar", "partnerCustomerId": "BB-2002"}})
    )
    a_id = enrolled["member"]["id"]
    tokens = {p: await gateway.partner_token(p) for p in ("brewbar", "skyway")}

    async def earn(partner: str, member: dict[str, str], key: str, points: int) -> Any:
        input = {"partner": partner, "member": member, "points": points, "idempotencyKey": key}
        response = await gateway.client.post(
            "/graphql",
            json={"query": EARN, "variables": {"input": input}},
            headers={
                "accept": "application/graphql-response+json",
                "authorization": f"Bearer {tokens[partner]}",
            },
        )
        return response.status_code, response.json(), partner, member

    assert (await earn("brewbar", {"id": a_id}, "first", 100))[0] == 200
    async with browser(gateway) as alice:
        await sign_in(alice, "skyway", "alice")  # B, enrolled at SkyWay as SKY-1001
        b_id = await browser_member(alice)
        merged = await sign_in(alice, "brewbar", "alice", path="link")  # A into B
        assert merged.response.status_code == 303, merged.response.text
    assert await member_seen(gateway, a_id) == b_id
    assert (await earn("skyway", {"id": b_id}, "first", 500))[0] == 200

    await sign_in(gateway, "freshmart", "carol")  # C
    c_id = await browser_member(gateway)
    start = await gateway.client.get("/auth/link/skyway")
    assert start.status_code == 302, start.text
    callback = urlsplit(await authorize(start.headers["location"], "alice"))

    async def link() -> tuple[httpx.Response, float]:
        await asyncio.sleep(0.2)
        began = time.perf_counter()
        response = await gateway.client.get(f"{callback.path}?{callback.query}")
        return response, time.perf_counter() - began

    members = [
        ("brewbar", {"id": a_id}),
        ("brewbar", {"partnerCustomerId": "BB-2002"}),
        ("skyway", {"partnerCustomerId": "SKY-1001"}),
        ("brewbar", {"id": b_id}),
    ]

    async def worker(number: int) -> list[Any]:
        partner, member = members[number % len(members)]
        return [await earn(partner, member, f"race-{number}-{n}", 7) for n in range(EARNS)]

    workers = 8
    began = time.perf_counter()
    *batches, (linked, took) = await asyncio.gather(*(worker(n) for n in range(workers)), link())
    retried = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    print(f"\nthe link took {took:.3f} s under the race ({time.perf_counter() - began:.3f} s)")
    print(f"{len(retried)} retried: {sorted(set(retried))}")
    answers = [answer for batch in batches for answer in batch]
    assert [a for a in answers if a[0] != 200 or "errors" in a[1]] == []
    assert [a for a in answers if payload(a[1])["userErrors"]] == []
    assert deadlocks(caplog) == []
    assert linked.status_code == 303, linked.text
    assert linked.headers["location"] == "/graphql"

    per_partner = {"brewbar": 0, "skyway": 0}
    for number in range(workers):
        per_partner[members[number % len(members)][0]] += EARNS * 7
    wallets = await balances(gateway, c_id)
    assert wallets["brewbar"] == 100 + per_partner["brewbar"]
    assert wallets["skyway"] == 500 + per_partner["skyway"]
    for retired in (a_id, b_id):
        assert await member_seen(gateway, retired) == c_id
        raw = decode_member_id(retired)
        assert raw is not None
        held = (await gateway.service.wallets([raw]))[raw]
        assert all(w.balance == 0 for w in held), held
    # Every earn landed on the survivor's wallet (the points of each answer's wallet leg).
    assert sum(w for w in wallets.values()) == 600 + sum(per_partner.values())


async def member_seen(gateway: Gateway, member_id: str) -> str:
    body = await gateway.gql(WALLETS, {"id": member_id})
    seen: str = body["data"]["member"]["id"]
    return seen


@pytest.fixture
async def impatient_pg(pg_url: str, brands: Brands) -> AsyncIterator[Gateway]:
    """The SSO gateway on PostgreSQL whose sessions give up waiting for a lock after 100 ms
    (``lock_timeout``): a stand-in for a database that keeps failing the gateway."""
    plain = pg_url.replace("postgresql+asyncpg://", "postgresql://")
    name = urlsplit(plain).path.lstrip("/")
    admin = await asyncpg.connect(plain)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" SET lock_timeout = 100')
        async for gateway in start_sso(pg_url, brands):
            yield gateway
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" RESET lock_timeout')
        await admin.close()


async def test_a_callback_the_database_keeps_failing_answers_503_and_keeps_its_flow(
    impatient_pg: Gateway,
):
    """The link cannot get its member's row (another transaction holds it longer than every
    retry waits): the callback answers 503 with Retry-After, never a 500; it links nothing,
    and it does not use the flow up."""
    gateway = impatient_pg
    await sign_in(gateway, "skyway", "bob")
    bob = decode_member_id(await browser_member(gateway))
    assert bob is not None
    start = await gateway.client.get("/auth/link/brewbar")
    assert start.status_code == 302, start.text
    callback = urlsplit(await authorize(start.headers["location"], "bob"))
    plain = postgres_plain(gateway)
    holder = await asyncpg.connect(plain)
    try:
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM members WHERE id = $1 FOR UPDATE", bob)
            response = await gateway.client.get(f"{callback.path}?{callback.query}")
    finally:
        await holder.close()
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert "try again" in response.text.lower()
    checker = await asyncpg.connect(plain)
    try:
        pending = await checker.fetchval(
            "SELECT count(*) FROM auth_flows WHERE purpose = 'link' AND consumed_at IS NULL"
        )
    finally:
        await checker.close()
    assert pending == 1
    me = await as_browser(gateway, "{ me { identities { provider subject } } }")
    assert me.json()["data"]["me"]["identities"] == [{"provider": "skyway", "subject": "bob"}]
    # Once the database lets it, linking works.
    linked = await sign_in(gateway, "brewbar", "bob", path="link")
    assert linked.response.status_code == 303, linked.response.text


def postgres_plain(gateway: Gateway) -> str:
    url = gateway.service.engine.url.render_as_string(hide_password=False)
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def test_a_member_lock_taken_out_of_order_does_not_wait(sso_pg: Gateway):
    """A transaction holding member Y that needs member X < Y later (a referrer found after
    the purchase's member) must not wait for X: waiting out of order is how deadlocks
    start. It fails at once with a retryable error, and the unit of work runs it again."""
    gateway = sso_pg
    ids = []
    for customer in ("LO-1", "LO-2"):
        enrolled = await gateway.gql(
            ENROL, {"input": {"partner": "brewbar", "partnerCustomerId": customer}}
        )
        raw = decode_member_id(payload(enrolled)["member"]["id"])
        assert raw is not None
        ids.append(raw)
    low, high = sorted(ids)
    engine = gateway.service.engine
    async with engine.connect() as holder, engine.connect() as late:
        await holder.begin()
        await locks.lock_members(holder, [low])
        await late.begin()
        assert await locks.lock_members(late, [high]) == {high: high}
        began = time.perf_counter()
        with pytest.raises(DBAPIError) as raised:
            await locks.lock_members(late, [low])
        assert sqlstate(raised.value) in RETRYABLE_SQLSTATES
        assert time.perf_counter() - began < 0.5
        await late.rollback()
        # In order, it waits as usual: the holder's commit lets it through.
        await late.begin()
        waiting = asyncio.ensure_future(locks.lock_members(late, [low, high]))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await holder.commit()
        assert await waiting == {low: low, high: high}
        await late.rollback()
