"""The remote pool adapter against the reference partner service, over real HTTP on loopback.

Each test runs a fresh reference partner under uvicorn on 127.0.0.1 and talks to it through
``RemotePool``; the fault-injection tests show, for each way a partner can fail, that points
move exactly once and that the adapter never believes an answer that is not about its request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from partners.development.reference_faults import BALANCE, BY_KEY, REVERSAL, ROUTES, TRANSACTIONS
from partners.development.reference_partner import ReferencePartner, serve_reference_in_thread
from partners.remote.adapter import RemotePool
from partners.remote.exceptions import (
    RemoteAlreadyReversed,
    RemoteInsufficientPoints,
    RemoteKeyReused,
    RemoteRefused,
    RemoteRejected,
    RemoteUnavailable,
    RemoteUnknownMember,
)
from partners.remote.transactions import RemoteTransaction
from partners.remote.wire import KEY, derive_key, token_from_environment, token_variable

TOKEN = "partner-token-for-tests"
SHORT = 0.3  # the client timeout of the timeout tests
SLOW = 0.6  # how long a "timeout_*" fault keeps the answer back


MEMBERS = {"SKY-1": 1000, "SKY-2": 50}


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[ReferencePartner, str]]:
    """One partner served for the module, reset before each test."""
    partner = ReferencePartner(TOKEN)
    with serve_reference_in_thread(partner) as url:
        yield partner, url


@pytest.fixture
def partner(served: tuple[ReferencePartner, str]) -> Iterator[ReferencePartner]:
    partner = served[0]
    partner.reset(MEMBERS)
    yield partner
    # Delayed requests land before the next test starts.
    assert partner.wait_idle(5.0)


@pytest.fixture
def base_url(served: tuple[ReferencePartner, str], partner: ReferencePartner) -> str:
    return served[1]


@pytest.fixture
async def pool(base_url: str) -> AsyncIterator[RemotePool]:
    async with RemotePool(base_url, TOKEN, timeout=2.0) as remote:
        yield remote


@pytest.fixture
async def impatient(base_url: str) -> AsyncIterator[RemotePool]:
    """A pool whose client gives up after ``SHORT`` seconds."""
    async with RemotePool(base_url, TOKEN, timeout=SHORT) as remote:
        yield remote


def posts(partner: ReferencePartner, path: str = "/transactions") -> int:
    return sum(1 for call in partner.calls if call.method == "POST" and call.path == path)


# ---- the contract through the adapter ------------------------------------------------------


async def test_credit_and_debit_move_points(pool: RemotePool, partner: ReferencePartner):
    credit = await pool.credit("SKY-1", 250, "earn-1", "receipt 1")
    assert isinstance(credit, RemoteTransaction)
    assert (credit.type, credit.customer_id, credit.points, credit.balance_after) == (
        "credit",
        "SKY-1",
        250,
        1250,
    )
    assert (credit.reference, credit.idempotency_key, credit.reverses) == (
        "receipt 1",
        "earn-1",
        None,
    )
    assert credit.created_at.utcoffset() is not None
    debit = await pool.debit("SKY-1", 1200, "redeem-1", "reward 7")
    assert (debit.type, debit.points, debit.balance_after) == ("debit", 1200, 50)
    assert await pool.balance("SKY-1") == 50 == partner.balance_of("SKY-1")
    assert partner.calls[0] == ("POST", "/transactions", "earn-1")


async def test_debit_beyond_the_balance_is_refused_and_the_refusal_is_kept(
    pool: RemotePool, partner: ReferencePartner
):
    with pytest.raises(RemoteInsufficientPoints) as refused:
        await pool.debit("SKY-2", 51, "redeem-2", "reward")
    assert refused.value.balance == 50
    assert isinstance(refused.value, RemoteRefused)
    assert partner.balance_of("SKY-2") == 50
    # The key is bound to its refusal: a retry after a top-up replays it, moving nothing.
    await pool.credit("SKY-2", 100, "top-up", "top-up")
    with pytest.raises(RemoteInsufficientPoints) as again:
        await pool.debit("SKY-2", 51, "redeem-2", "reward")
    assert again.value.balance == 50
    assert partner.balance_of("SKY-2") == 150
    assert await pool.find("redeem-2") is None


async def test_unknown_member(pool: RemotePool, partner: ReferencePartner):
    with pytest.raises(RemoteUnknownMember):
        await pool.balance("NOBODY")
    with pytest.raises(RemoteUnknownMember) as refused:
        await pool.credit("NOBODY", 10, "earn-nobody", "receipt")
    assert refused.value.customer_id == "NOBODY"
    assert partner.transactions == []


async def test_customer_ids_with_reserved_characters(pool: RemotePool, partner: ReferencePartner):
    partner.add_member("A/B ?#%é", 5)
    assert await pool.balance("A/B ?#%é") == 5
    moved = await pool.credit("A/B ?#%é", 5, "odd-1", "receipt")
    assert moved.customer_id == "A/B ?#%é" and partner.balance_of("A/B ?#%é") == 10


async def test_replay_with_the_same_key_moves_points_once(
    pool: RemotePool, partner: ReferencePartner
):
    first = await pool.credit("SKY-1", 100, "earn-2", "receipt 2")
    second = await pool.credit("SKY-1", 100, "earn-2", "receipt 2")
    assert second == first
    assert partner.balance_of("SKY-1") == 1100
    assert posts(partner) == 2 and len(partner.transactions) == 1


async def test_racing_retries_move_points_once(pool: RemotePool, partner: ReferencePartner):
    answers = await asyncio.gather(
        *(pool.debit("SKY-1", 10, "till-9", "coffee") for _ in range(10))
    )
    assert len({answer.id for answer in answers}) == 1
    assert partner.balance_of("SKY-1") == 990


async def test_key_reused_for_another_request(pool: RemotePool, partner: ReferencePartner):
    await pool.credit("SKY-1", 100, "earn-3", "receipt 3")
    for other in (
        pool.credit("SKY-1", 101, "earn-3", "receipt 3"),
        pool.credit("SKY-2", 100, "earn-3", "receipt 3"),
        pool.debit("SKY-1", 100, "earn-3", "receipt 3"),
        pool.credit("SKY-1", 100, "earn-3", "receipt 4"),
    ):
        with pytest.raises(RemoteKeyReused):
            await other
    with pytest.raises(RemoteKeyReused):  # one namespace for movements and reversals
        await pool.reverse((await pool.find("earn-3") or pytest.fail()).id, "earn-3")
    assert partner.balance_of("SKY-1") == 1100 and partner.balance_of("SKY-2") == 50


async def test_a_transaction_is_reversed_once(pool: RemotePool, partner: ReferencePartner):
    debit = await pool.debit("SKY-1", 300, "redeem-3", "reward 3")
    reversal = await pool.reverse(debit.id, "undo-3")
    assert (reversal.type, reversal.points, reversal.reverses) == ("credit", 300, debit.id)
    assert (reversal.balance_after, reversal.reference) == (1000, "reward 3")
    assert await pool.reverse(debit.id, "undo-3") == reversal  # a replay
    with pytest.raises(RemoteAlreadyReversed) as twice:
        await pool.reverse(debit.id, "undo-3-again")
    assert twice.value.reversal_id == reversal.id
    with pytest.raises(RemoteRejected) as of_reversal:
        await pool.reverse(reversal.id, "undo-undo")
    assert (of_reversal.value.status, of_reversal.value.code) == (422, "not_reversible")
    with pytest.raises(RemoteRejected) as unknown:
        await pool.reverse("tx_nothing", "undo-nothing")
    assert (unknown.value.status, unknown.value.code) == (404, "unknown_transaction")
    assert partner.balance_of("SKY-1") == 1000


async def test_reversing_a_credit_that_was_spent_is_refused(
    pool: RemotePool, partner: ReferencePartner
):
    credit = await pool.credit("SKY-2", 100, "earn-4", "receipt 4")
    await pool.debit("SKY-2", 120, "redeem-4", "reward 4")
    with pytest.raises(RemoteInsufficientPoints) as refused:
        await pool.reverse(credit.id, "undo-4")
    assert refused.value.balance == 30 == partner.balance_of("SKY-2")
    await pool.credit("SKY-2", 70, "earn-4b", "receipt 4b")
    reversal = await pool.reverse(credit.id, "undo-4b")  # "undo-4" is bound to its refusal
    assert (reversal.type, reversal.balance_after) == ("debit", 0)


async def test_lookup_by_key(pool: RemotePool):
    debit = await pool.debit("SKY-1", 5, "redeem-5", "reward 5")
    assert await pool.find("redeem-5") == debit
    assert await pool.find("never-used") is None
    reversal = await pool.reverse(debit.id, "undo-5")
    assert await pool.find("undo-5") == reversal


async def test_a_bad_token_is_rejected(base_url: str, partner: ReferencePartner):
    async with RemotePool(base_url, "not-the-token") as pool:
        with pytest.raises(RemoteRejected) as rejected:
            await pool.credit("SKY-1", 10, "earn-5", "receipt 5")
        with pytest.raises(RemoteRejected):
            await pool.balance("SKY-1")
    assert (rejected.value.status, rejected.value.code) == (401, "unauthorized")
    assert posts(partner) == 1  # a refusal is not retried
    assert partner.balance_of("SKY-1") == 1000


def test_the_token_comes_from_the_environment():
    assert token_variable("sky-way") == "COALITION_REMOTE_SKY_WAY_TOKEN"
    assert token_from_environment("skyway", {"COALITION_REMOTE_SKYWAY_TOKEN": " t0k "}) == "t0k"
    with pytest.raises(LookupError, match="COALITION_REMOTE_SKYWAY_TOKEN"):
        token_from_environment("skyway", {"COALITION_REMOTE_SKYWAY_TOKEN": " "})


def test_derived_keys_are_valid_and_distinct():
    key = derive_key("receipt 0001 ✓", "member-7", "debit")
    assert KEY.fullmatch(key) and key == derive_key("receipt 0001 ✓", "member-7", "debit")
    assert derive_key("ab", "c") != derive_key("a", "bc") != derive_key("abc")


async def test_pool_from_environment(base_url: str):
    environ = {"COALITION_REMOTE_SKYWAY_TOKEN": TOKEN}
    async with RemotePool.from_environment("skyway", base_url, environ) as pool:
        assert await pool.balance("SKY-1") == 1000


async def test_arguments_are_checked_before_anything_is_sent(
    pool: RemotePool, partner: ReferencePartner
):
    for bad in (
        pool.credit("SKY-1", 0, "k-1", "r"),
        pool.credit("SKY-1", True, "k-1", "r"),
        pool.credit("SKY-1", 10, "with space", "r"),
        pool.credit("SKY-1", 10, "k-1", ""),
        pool.debit("", 10, "k-1", "r"),
        pool.find("x" * 256),
    ):
        with pytest.raises(ValueError):
            await bad
    assert partner.calls == []


# ---- fault injection -----------------------------------------------------------------------


async def test_error_before_the_work_then_the_retry_succeeds(
    pool: RemotePool, partner: ReferencePartner
):
    partner.fail_next(TRANSACTIONS, "error")
    moved = await pool.credit("SKY-1", 40, "earn-6", "receipt 6")
    assert moved.balance_after == 1040 == partner.balance_of("SKY-1")
    assert posts(partner) == 2 and len(partner.transactions) == 1
    assert partner.faults.pending() == []


async def test_error_after_the_work_the_retry_replays_it(
    pool: RemotePool, partner: ReferencePartner
):
    partner.fail_next(TRANSACTIONS, "error_after")
    moved = await pool.debit("SKY-1", 40, "redeem-6", "reward 6")
    assert moved.balance_after == 960 == partner.balance_of("SKY-1")
    assert posts(partner) == 2 and len(partner.transactions) == 1


async def test_error_after_the_work_twice_the_lookup_finds_it(
    pool: RemotePool, partner: ReferencePartner
):
    partner.fail_next(TRANSACTIONS, "error_after", times=2)
    moved = await pool.debit("SKY-1", 40, "redeem-7", "reward 7")
    assert moved.id == partner.transactions[0]["id"]
    assert partner.balance_of("SKY-1") == 960 and len(partner.transactions) == 1
    assert [call.path for call in partner.calls] == [
        "/transactions",
        "/transactions",
        "/transactions/by-key/redeem-7",
    ]


async def test_timeout_after_the_work_found_by_key(
    impatient: RemotePool, partner: ReferencePartner
):
    partner.fail_next(TRANSACTIONS, "timeout_after", times=2, delay=SLOW)
    moved = await impatient.credit("SKY-2", 25, "earn-7", "receipt 7")
    assert moved.balance_after == 75
    assert partner.wait_idle(5.0)
    assert partner.balance_of("SKY-2") == 75 and len(partner.transactions) == 1
    assert partner.calls[-1].path == "/transactions/by-key/earn-7"


async def test_timeout_after_the_work_once_the_retry_replays_it(
    impatient: RemotePool, partner: ReferencePartner
):
    partner.fail_next(TRANSACTIONS, "timeout_after", delay=SLOW)
    moved = await impatient.debit("SKY-2", 25, "redeem-8", "reward 8")
    assert moved.balance_after == 25
    assert partner.wait_idle(5.0)
    assert partner.balance_of("SKY-2") == 25 and posts(partner) == 2


async def test_timeout_before_the_work_the_retry_does_it_and_the_late_one_replays(
    impatient: RemotePool, partner: ReferencePartner
):
    partner.fail_next(TRANSACTIONS, "timeout_before", delay=SLOW)
    moved = await impatient.credit("SKY-2", 10, "earn-8", "receipt 8")
    assert moved.balance_after == 60
    # The first request is still in flight; when it lands, it is a replay.
    assert partner.wait_idle(5.0)
    assert partner.balance_of("SKY-2") == 60 and len(partner.transactions) == 1
    assert posts(partner) == 2


async def test_a_request_delivered_twice_moves_points_once(
    pool: RemotePool, partner: ReferencePartner
):
    partner.fail_next(TRANSACTIONS, "duplicate")
    moved = await pool.debit("SKY-1", 70, "redeem-9", "reward 9")
    assert moved.balance_after == 930 == partner.balance_of("SKY-1")
    assert posts(partner) == 1 and len(partner.transactions) == 1


async def test_a_stale_answer_is_never_believed(pool: RemotePool, partner: ReferencePartner):
    await pool.credit("SKY-1", 100, "earn-9", "receipt 9")
    partner.fail_next(TRANSACTIONS, "replay_answer", times=2)
    with pytest.raises(RemoteUnavailable) as unknown:
        await pool.credit("SKY-2", 100, "earn-10", "receipt 10")
    assert unknown.value.reason == "malformed"
    # What the partner did: answered twice with the SKY-1 credit and moved nothing.
    assert partner.balance_of("SKY-2") == 50 and partner.balance_of("SKY-1") == 1100
    assert len(partner.transactions) == 1 and await pool.find("earn-10") is None
    # The same call later, with the same key, gets the real answer.
    moved = await pool.credit("SKY-2", 100, "earn-10", "receipt 10")
    assert moved.customer_id == "SKY-2" and partner.balance_of("SKY-2") == 150


async def test_a_stale_answer_once_the_retry_gets_the_real_one(
    pool: RemotePool, partner: ReferencePartner
):
    await pool.credit("SKY-1", 100, "earn-11", "receipt 11")
    partner.fail_next(TRANSACTIONS, "replay_answer")
    moved = await pool.credit("SKY-1", 100, "earn-12", "receipt 12")
    assert moved.idempotency_key == "earn-12" and partner.balance_of("SKY-1") == 1200


async def test_stale_balance_and_lookup_answers_are_caught(
    pool: RemotePool, partner: ReferencePartner
):
    assert await pool.balance("SKY-1") == 1000
    partner.fail_next(BALANCE, "replay_answer")
    with pytest.raises(RemoteUnavailable, match="malformed"):
        await pool.balance("SKY-2")
    await pool.credit("SKY-1", 1, "earn-13", "receipt 13")
    await pool.credit("SKY-1", 1, "earn-14", "receipt 14")
    assert await pool.find("earn-13")
    partner.fail_next(BY_KEY, "replay_answer")
    with pytest.raises(RemoteUnavailable, match="malformed"):
        await pool.find("earn-14")


async def test_two_failures_then_the_lookup_fails_too(pool: RemotePool, partner: ReferencePartner):
    partner.fail_next(TRANSACTIONS, "error_after", times=2)
    partner.fail_next(BY_KEY, "error")
    with pytest.raises(RemoteUnavailable) as unknown:
        await pool.debit("SKY-1", 200, "redeem-10", "reward 10")
    assert unknown.value.reason == "status"
    # The outcome was unknown to the caller; the lookup now tells the truth: it happened.
    found = await pool.find("redeem-10")
    assert found is not None and found.balance_after == 800 == partner.balance_of("SKY-1")


async def test_two_failures_before_the_work_nothing_happened(
    pool: RemotePool, partner: ReferencePartner
):
    partner.fail_next(TRANSACTIONS, "error", times=2)
    with pytest.raises(RemoteUnavailable, match="not known to the partner yet"):
        await pool.debit("SKY-1", 200, "redeem-11", "reward 11")
    assert await pool.find("redeem-11") is None
    assert partner.balance_of("SKY-1") == 1000


async def test_reversal_with_faults_reverses_once(pool: RemotePool, partner: ReferencePartner):
    debit = await pool.debit("SKY-1", 100, "redeem-12", "reward 12")
    partner.fail_next(REVERSAL, "error_after", times=2)
    reversal = await pool.reverse(debit.id, "undo-12")
    assert reversal.reverses == debit.id
    partner.fail_next(REVERSAL, "duplicate")
    assert await pool.reverse(debit.id, "undo-12") == reversal
    assert partner.balance_of("SKY-1") == 1000 and len(partner.transactions) == 2


async def test_a_partner_that_is_down():
    with serve_reference_in_thread(ReferencePartner(TOKEN)) as url:
        pass
    async with RemotePool(url, TOKEN, timeout=SHORT) as pool:
        with pytest.raises(RemoteUnavailable) as unknown:
            await pool.credit("SKY-1", 1, "earn-15", "receipt 15")
    assert unknown.value.reason == "connection"


def test_faults_are_checked(partner: ReferencePartner):
    with pytest.raises(ValueError, match="unknown route"):
        partner.fail_next("POST /nowhere", "error")
    with pytest.raises(ValueError, match="unknown fault mode"):
        partner.fail_next(TRANSACTIONS, "explode")  # type: ignore[arg-type]
    partner.fail_next(TRANSACTIONS, "error", times=2)
    partner.fail_next(BY_KEY, "timeout_before")
    assert partner.faults.pending() == [(TRANSACTIONS, "error")] * 2 + [(BY_KEY, "timeout_before")]
    partner.faults.clear()
    assert partner.faults.pending() == []


# ---- the wire, without the adapter ---------------------------------------------------------


async def test_the_wire_format(base_url: str, partner: ReferencePartner):
    headers = {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "wire-1"}
    body = {"type": "credit", "customer_id": "SKY-1", "points": 5, "reference": "r"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers) as client:
        created = await client.post("/transactions", json=body)
        replayed = await client.post("/transactions", json=body)
        assert (created.status_code, replayed.status_code) == (201, 200)
        assert created.json() == replayed.json()
        assert replayed.headers["Idempotent-Replayed"] == "true"
        assert created.json()["created_at"].endswith("Z")
        bad_bodies: list[Any] = [
            {**body, "points": 1.0},
            {**body, "points": True},
            {**body, "points": 0},
            {**body, "type": "gift"},
            {**body, "extra": 1},
            {"type": "credit"},
            [body],
        ]
        for bad in bad_bodies:
            answer = await client.post("/transactions", json=bad)
            assert answer.status_code == 400, bad
            assert answer.json()["error"] == "invalid_request" and answer.json()["detail"]
        garbage = await client.post("/transactions", content=b"{not json")
        assert garbage.status_code == 400
        no_key = await client.post(
            "/transactions", json=body, headers={"Idempotency-Key": "has space"}
        )
        assert no_key.status_code == 400
        missing = await client.get("/nowhere")
        assert (missing.status_code, missing.json()) == (404, {"error": "not_found"})
        lookup = await client.get("/transactions/by-key/nothing")
        assert (lookup.status_code, lookup.json()) == (404, {"error": "unknown_key"})
        unauthorised = await client.get(
            "/members/SKY-1/balance", headers={"Authorization": "Bearer wrong"}
        )
        assert unauthorised.status_code == 401
        assert unauthorised.headers["WWW-Authenticate"] == "Bearer"
    assert partner.balance_of("SKY-1") == 1005


def _answer(status: int, body: object) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, json=body))


GOOD = {
    "id": "tx_1",
    "type": "credit",
    "customer_id": "SKY-1",
    "points": 10,
    "balance_after": 10,
    "created_at": "2025-01-31T12:00:00Z",
    "reference": "r",
    "idempotency_key": "k",
    "reverses": None,
}


@pytest.mark.parametrize(
    "change",
    [
        {"points": 11},
        {"points": "10"},
        {"points": 10.0},
        {"customer_id": "SKY-2"},
        {"type": "debit"},
        {"idempotency_key": "other"},
        {"reference": "other"},
        {"reverses": "tx_0"},
        {"balance_after": -1},
        {"balance_after": True},
        {"created_at": "yesterday"},
        {"created_at": "2025-01-31T12:00:00"},
        {"id": ""},
    ],
)
async def test_answers_that_do_not_match_the_request_are_malformed(change: dict[str, Any]):
    async with RemotePool("http://partner", TOKEN, transport=_answer(201, GOOD | change)) as pool:
        with pytest.raises(RemoteUnavailable) as unknown:
            await pool.credit("SKY-1", 10, "k", "r")
    assert unknown.value.reason == "malformed"


async def test_a_matching_answer_is_accepted_and_odd_statuses_are_not():
    async with RemotePool("http://partner", TOKEN, transport=_answer(201, GOOD)) as pool:
        assert (await pool.credit("SKY-1", 10, "k", "r")).id == "tx_1"
    insufficient = {"error": "insufficient_points", "balance": 1}
    for status, body in [(202, GOOD), (200, [GOOD]), (302, GOOD), (422, insufficient)]:
        async with RemotePool("http://partner", TOKEN, transport=_answer(status, body)) as pool:
            with pytest.raises(RemoteUnavailable, match="malformed"):
                await pool.credit("SKY-1", 10, "k", "r")
    async with RemotePool("http://partner", TOKEN, transport=_answer(429, {})) as pool:
        with pytest.raises(RemoteUnavailable, match="status"):
            await pool.balance("SKY-1")


def test_the_openapi_description_names_the_reference_routes():
    yaml = pytest.importorskip("yaml")
    spec = yaml.safe_load(
        (Path(__file__).parent.parent / "partners/remote/openapi.yaml").read_text()
    )
    assert spec["openapi"].startswith("3.1")
    described = {
        f"{method.upper()} {path}"
        for path, operations in spec["paths"].items()
        for method in operations
        if method in ("get", "post")
    }
    assert described == set(ROUTES)
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    json.dumps(spec)  # plain data throughout


async def test_a_lookup_that_does_not_match_the_request_is_not_believed():
    seen: list[str] = []

    def partner(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.method == "POST":
            return httpx.Response(503)
        return httpx.Response(200, json=GOOD | {"customer_id": "SKY-2"})

    transport = httpx.MockTransport(partner)
    async with RemotePool("http://partner/api/v1", TOKEN, transport=transport) as pool:
        with pytest.raises(RemoteUnavailable, match="lookup by key failed") as unknown:
            await pool.credit("SKY-1", 10, "k", "r")
    assert unknown.value.reason == "status"
    assert seen == [
        "POST /api/v1/transactions",
        "POST /api/v1/transactions",
        "GET /api/v1/transactions/by-key/k",
    ]
