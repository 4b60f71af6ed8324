"""Concurrent requests against one wallet, one key, one transfer; deadlock retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.kernel.errors import ErrorCode
from gateway.kernel.unit_of_work import Contention, UnitOfWork, sqlstate
from tests.conftest import Clock, Gateway, start_gateway
from tests.operations import EARN, ENROL, REDEEM, REVERSE, codes, payload
from tests.test_api import balances, convert, earn, enrol


async def together(*calls: Any) -> list[Any]:
    return list(await asyncio.gather(*calls))


async def test_concurrent_redeems_never_overdraw(gateway: Gateway):
    member = await enrol(gateway)
    await earn(gateway, member, 1000, "E1")
    results = await together(
        *(
            gateway.gql(
                REDEEM,
                {
                    "input": {
                        "partner": "skyway",
                        "member": {"id": member},
                        "points": 30,
                        "idempotencyKey": f"R{i}",
                    }
                },
            )
            for i in range(40)
        )
    )
    outcomes = [codes(payload(body)) for body in results]
    assert outcomes.count([]) == 33
    assert outcomes.count(["INSUFFICIENT_POINTS"]) == 7
    assert (await balances(gateway, member))["skyway"] == 10


async def test_concurrent_earns_lose_no_update(gateway: Gateway):
    member = await enrol(gateway)
    await together(*(earn(gateway, member, 1, f"E{i}") for i in range(60)))
    assert (await balances(gateway, member))["skyway"] == 60


async def test_racing_retries_with_one_key_post_once(gateway: Gateway):
    member = await enrol(gateway)
    variables = {
        "input": {
            "partner": "skyway",
            "member": {"id": member},
            "points": 70,
            "idempotencyKey": "receipt-1",
        }
    }
    results = [
        payload(body) for body in await together(*(gateway.gql(EARN, variables) for _ in range(25)))
    ]
    assert {r["transfer"]["id"] for r in results} == {results[0]["transfer"]["id"]}
    assert [r["idempotentReplay"] for r in results].count(False) == 1
    assert {r["wallet"]["balance"] for r in results} == {70}
    assert (await balances(gateway, member))["skyway"] == 70


async def test_racing_enrolments_of_one_pair_make_one_member(gateway: Gateway):
    variables = {"input": {"partner": "brewbar", "partnerCustomerId": "same"}}
    results = [
        payload(body)
        for body in await together(*(gateway.gql(ENROL, variables) for _ in range(15)))
    ]
    assert len({r["member"]["id"] for r in results}) == 1
    assert [r["created"] for r in results].count(True) == 1


async def test_racing_partial_reversals_never_exceed_the_original(gateway: Gateway):
    member = await enrol(gateway)
    earned = await earn(gateway, member, 500, "E1")
    transfer_id = earned["transfer"]["id"]
    results = [
        payload(body)
        for body in await together(
            *(
                gateway.gql(
                    REVERSE,
                    {
                        "input": {
                            "transferId": transfer_id,
                            "idempotencyKey": f"V{i}",
                            "points": 100,
                        }
                    },
                )
                for i in range(12)
            )
        )
    ]
    outcomes = [codes(r) for r in results]
    assert outcomes.count([]) == 5
    assert outcomes.count(["TRANSFER_ALREADY_REVERSED"]) == 7
    assert (await balances(gateway, member))["skyway"] == 0


async def test_opposite_conversions_of_one_member_all_complete(gateway: Gateway):
    member = await enrol(gateway)
    await earn(gateway, member, 100_000, "E1")
    await earn(gateway, member, 10_000, "E2", partner="brewbar")

    def conversion(index: int) -> Any:
        if index % 2:
            return convert(gateway, member, 1000, f"C{index}", "skyway", "brewbar")
        return convert(gateway, member, 100, f"C{index}", "brewbar", "skyway")

    results = await together(*(conversion(i) for i in range(30)))
    assert all(r["userErrors"] == [] for r in results)
    # 15 x (1000 miles -> 245 stars) and 15 x (100 stars -> 285 miles)
    assert await balances(gateway, member) == {
        "skyway": 100_000 - 15 * 1000 + 15 * 285,
        "brewbar": 10_000 + 15 * 245 - 15 * 100,
        "freshmart": 0,
    }


@pytest.fixture
async def pg_gateway(pg_url: str) -> AsyncIterator[Gateway]:
    async for gateway in start_gateway(pg_url, Clock()):
        yield gateway


async def test_a_real_deadlock_is_retried_inside_the_gateway(pg_gateway: Gateway):
    uow = UnitOfWork(pg_gateway.service.engine)
    ids = sorted(pg_gateway.service.kernel.system_accounts.values())[:2]
    ready = [asyncio.Event(), asyncio.Event()]

    def work(me: int) -> Any:
        first, second = (ids[0], ids[1]) if me == 0 else (ids[1], ids[0])

        async def run(connection: AsyncConnection) -> str:
            lock = text("UPDATE accounts SET balance = balance WHERE id = :id")
            await connection.execute(lock, {"id": first})
            ready[me].set()
            await ready[1 - me].wait()
            await connection.execute(lock, {"id": second})
            return f"done {me}"

        return run

    results = await asyncio.wait_for(together(uow.write(work(0)), uow.write(work(1))), 30)
    assert results == ["done 0", "done 1"]
    assert uow.retries >= 1


async def test_retries_are_bounded(pg_gateway: Gateway):
    uow = UnitOfWork(pg_gateway.service.engine, attempts=3)
    attempts = 0

    async def always_deadlocks(connection: AsyncConnection) -> None:
        nonlocal attempts
        attempts += 1
        await connection.execute(
            text("DO $$ BEGIN RAISE EXCEPTION 'simulated' USING ERRCODE = '40P01'; END $$")
        )

    # A typed, retryable error (CONTENTION), never the database's own.
    with pytest.raises(Contention) as raised:
        await uow.write(always_deadlocks)
    assert raised.value.code is ErrorCode.CONTENTION
    cause = raised.value.__cause__
    assert isinstance(cause, DBAPIError) and sqlstate(cause) == "40P01"
    assert attempts == 3 and uow.retries == 2
