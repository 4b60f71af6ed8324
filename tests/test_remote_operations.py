"""Earn, redeem and conversion at a partner whose pool lives in its own system.

A reference partner (``partners.development.reference_partner``) runs under uvicorn on 127.0.0.1;
the gateway reaches it over real HTTP. Faults are injected at each remote step, and every test
checks what a member would notice: the points at the partner, the wallet at the gateway,
that nothing was lost or created twice, and what a retry answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.api.graphql.scalars import decode_member_id, encode_id
from gateway.ledger.tables import obligations
from gateway.remote.record import COMPENSATED, COMPLETED, FAILED, PENDING
from gateway.remote.tables import remote_operations
from partners.config.coalition import DEMO_DIRECTORY
from partners.development.reference_faults import BALANCE, BY_KEY, MODES, TRANSACTIONS
from partners.development.reference_partner import ReferencePartner, serve_reference_in_thread
from tests.conftest import Clock, Gateway, core_text, start_gateway
from tests.operations import CONVERT, EARN, ERRORS, REDEEM, REVERSE, codes, payload

TOKEN = "northjet-test-token"
TIMEOUT = 0.4  # the gateway's timeout towards the partner, in seconds
SLOW = 0.8  # how long a "timeout" fault holds an answer back

NORTHJET = """
slug = "northjet"
name = "NorthJet"
point_value = "0.01"

[currency]
code = "NJP"
name = "jet points"

[earn]
points_per_unit = "1"

[pool]
hosted = "remote"
base_url = "{base_url}"
timeout_seconds = {timeout}

[[conversions]]
to = "brewbar"
rate = "0.25"
min_points = 10
effective_from = 2026-01-01
"""

BREWBAR_TO_NORTHJET = """
[[conversions]]
to = "northjet"
rate = "4"
min_points = 1
effective_from = 2026-01-01
"""

WALLETS = """
query($id: ID!) { member(id: $id) { wallets { partner { slug } balance } } }
"""


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[ReferencePartner, str]]:
    partner = ReferencePartner(TOKEN)
    with serve_reference_in_thread(partner) as base_url:
        yield partner, base_url


@pytest.fixture
def northjet(served: tuple[ReferencePartner, str]) -> Iterator[ReferencePartner]:
    partner, _ = served
    partner.reset({"NJ-1": 1000, "NJ-2": 0})
    partner.faults.delay = SLOW
    yield partner
    partner.faults.clear()
    partner.wait_idle(10)


def remote_config(directory: Path, base_url: str) -> Path:
    for file in DEMO_DIRECTORY.glob("*.toml"):
        (directory / file.name).write_text(core_text(file))
    with (directory / "brewbar.toml").open("a") as brewbar:
        brewbar.write(BREWBAR_TO_NORTHJET)
    text = NORTHJET.format(base_url=base_url, timeout=TIMEOUT)
    (directory / "northjet.toml").write_text(text)
    return directory


@pytest.fixture
async def gw(
    database_url: str,
    clock: Clock,
    tmp_path: Path,
    served: tuple[ReferencePartner, str],
    northjet: ReferencePartner,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Gateway]:
    monkeypatch.setenv("COALITION_REMOTE_NORTHJET_TOKEN", TOKEN)
    directory = tmp_path / "config"
    directory.mkdir()
    config = remote_config(directory, served[1])
    async for gateway in start_gateway(
        database_url,
        clock,
        config_dir=str(config),
        hold_sweep_seconds=0,
        remote_retry_seconds=0,
    ):
        yield gateway


# ---- helpers ---------------------------------------------------------------------------------


async def member_at_northjet(gw: Gateway, customer: str = "NJ-1") -> str:
    """The global id of a member enrolled at NorthJet as ``customer``."""
    enrolled = await gw.service.enrol("northjet", customer)
    return encode_id("Member", enrolled.member.id)


def uuid_of(member: str) -> str:
    found = decode_member_id(member)
    assert found is not None
    return found


async def earn(gw: Gateway, member: str, points: int, key: str, partner: str) -> dict[str, Any]:
    variables = {"partner": partner, "member": {"id": member}, "points": points}
    return payload(await gw.gql(EARN, {"input": {**variables, "idempotencyKey": key}}))


async def redeem(gw: Gateway, member: str, points: int, key: str, partner: str) -> dict[str, Any]:
    variables = {"partner": partner, "member": {"id": member}, "points": points}
    return payload(await gw.gql(REDEEM, {"input": {**variables, "idempotencyKey": key}}))


async def convert(
    gw: Gateway, member: str, source: str, target: str, points: int, key: str
) -> dict[str, Any]:
    variables = {
        "memberId": member,
        "fromPartner": source,
        "toPartner": target,
        "points": points,
        "idempotencyKey": key,
    }
    return payload(await gw.gql(CONVERT, {"input": variables}))


async def brewbar_stars(gw: Gateway, member: str) -> int:
    wallets = await gw.service.wallets([uuid_of(member)])
    return sum(w.balance for w in wallets.get(uuid_of(member), []) if w.pool == "brewbar")


async def operations(gw: Gateway) -> list[Any]:
    async with gw.service.engine.connect() as connection:
        result = await connection.execute(
            sa.select(remote_operations).order_by(remote_operations.c.created_at)
        )
        return list(result)


async def transfers_of(gw: Gateway, member: str) -> list[str]:
    history = await gw.service.history(uuid_of(member), None, None, 100)
    return sorted(t.kind.value for t in history)


def real_transactions(partner: ReferencePartner) -> list[dict[str, Any]]:
    return [t for t in partner.transactions if t["reverses"] is None]


# ---- earn and redeem are forwarded ----------------------------------------------------------


async def test_earn_at_a_remote_partner_credits_its_own_ledger_once(
    gw: Gateway, northjet: ReferencePartner
):
    member = await member_at_northjet(gw)
    first = await earn(gw, member, 250, "till-1", "northjet")
    assert first["userErrors"] == []
    assert first["wallet"]["balance"] == 1250  # as the partner answered
    assert northjet.balance_of("NJ-1") == 1250
    legs = {(leg["account"], leg["amount"]) for leg in first["transfer"]["legs"]}
    assert legs == {("ISSUANCE", -250), ("REMOTE", 250)}
    again = await earn(gw, member, 250, "till-1", "northjet")
    assert again["idempotentReplay"] is True
    assert again["transfer"]["id"] == first["transfer"]["id"]
    assert northjet.balance_of("NJ-1") == 1250
    assert len(northjet.transactions) == 1
    (operation,) = await operations(gw)
    assert operation.status == COMPLETED
    assert operation.remote_transaction_id == northjet.transactions[0]["id"]


async def test_the_members_wallet_at_a_remote_partner_is_the_partners_balance(
    gw: Gateway, northjet: ReferencePartner
):
    member = await member_at_northjet(gw)
    northjet.add_member("NJ-1", 4321)
    wallets = payload(await gw.gql(WALLETS, {"id": member}))["wallets"]
    assert {w["partner"]["slug"]: w["balance"] for w in wallets}["northjet"] == 4321
    northjet.fail_next("GET /members/{customer_id}/balance", "error")
    wallets = payload(await gw.gql(WALLETS, {"id": member}))["wallets"]
    # A partner that does not answer is left out, not shown as zero.
    assert "northjet" not in {w["partner"]["slug"] for w in wallets}


async def test_redeem_at_a_remote_partner_debits_it_and_a_refusal_keeps_the_key_free(
    gw: Gateway, northjet: ReferencePartner
):
    member = await member_at_northjet(gw)
    short = await redeem(gw, member, 1500, "pos-7", "northjet")
    assert codes(short) == ["INSUFFICIENT_POINTS"]
    assert "holds 1000 points" in short["userErrors"][0]["message"]
    assert await transfers_of(gw, member) == []
    northjet.add_member("NJ-1", 2000)
    # The same key again: the partner bound its refusal to the first remote key, so the
    # gateway starts a fresh remote step, and the retry succeeds.
    done = await redeem(gw, member, 1500, "pos-7", "northjet")
    assert done["userErrors"] == [] and done["idempotentReplay"] is False
    assert done["wallet"]["balance"] == 500
    assert northjet.balance_of("NJ-1") == 500
    assert [o.status for o in await operations(gw)] == [FAILED, COMPLETED]


async def test_a_member_not_enrolled_at_the_remote_partner_is_refused_without_a_call(
    gw: Gateway, northjet: ReferencePartner
):
    elsewhere = encode_id("Member", (await gw.service.enrol("brewbar", "BB-9")).member.id)
    result = await earn(gw, elsewhere, 10, "k", "northjet")
    assert codes(result) == ["UNKNOWN_MEMBER"]
    assert "not enrolled at 'northjet'" in result["userErrors"][0]["message"]
    assert northjet.calls == []


async def test_a_customer_the_partner_does_not_know_is_unknown_member(
    gw: Gateway, northjet: ReferencePartner
):
    northjet.add_member("NJ-404")
    member = await member_at_northjet(gw, "NJ-404")
    northjet.reset({"NJ-1": 1000, "NJ-2": 0})  # then the partner closes the account
    result = await earn(gw, member, 10, "k", "northjet")
    assert codes(result) == ["UNKNOWN_MEMBER"]
    assert "NorthJet has no member 'NJ-404'" in result["userErrors"][0]["message"]
    assert [o.status for o in await operations(gw)] == [FAILED]
    assert await transfers_of(gw, member) == []


async def test_what_a_remote_pool_cannot_do_is_refused_clearly(
    gw: Gateway, northjet: ReferencePartner
):
    member = await member_at_northjet(gw)
    earned = await earn(gw, member, 100, "e-1", "northjet")
    reversal = payload(
        await gw.gql(
            REVERSE,
            {"input": {"transferId": earned["transfer"]["id"], "idempotencyKey": "r-1"}},
        )
    )
    assert codes(reversal) == ["NOT_AVAILABLE_AT_REMOTE_POOL"]
    hold = payload(
        await gw.gql(
            f"""mutation($input: AuthorizeRedemptionInput!) {{
              authorizeRedemption(input: $input) {{ {ERRORS} }} }}""",
            {
                "input": {
                    "partner": "northjet",
                    "member": {"id": member},
                    "points": 10,
                    "idempotencyKey": "h-1",
                }
            },
        )
    )
    assert codes(hold) == ["NOT_AVAILABLE_AT_REMOTE_POOL"]
    assert northjet.balance_of("NJ-1") == 1100


# ---- conversions are sagas ------------------------------------------------------------------


async def stars(gw: Gateway, member: str, points: int) -> None:
    assert (await earn(gw, member, points, f"stars-{points}", "brewbar"))["userErrors"] == []


async def test_converting_hosted_points_into_a_remote_pool(gw: Gateway, northjet: ReferencePartner):
    member = await member_at_northjet(gw)
    await stars(gw, member, 100)
    result = await convert(gw, member, "brewbar", "northjet", 40, "c-1")
    assert result["userErrors"] == []
    assert result["transfer"]["receivedPoints"] == 160
    assert await brewbar_stars(gw, member) == 60
    assert northjet.balance_of("NJ-1") == 1160
    again = await convert(gw, member, "brewbar", "northjet", 40, "c-1")
    assert again["idempotentReplay"] is True
    assert northjet.balance_of("NJ-1") == 1160 and await brewbar_stars(gw, member) == 60
    async with gw.service.engine.connect() as connection:
        owed = (await connection.execute(sa.select(obligations))).all()
    assert [(o.debtor, o.creditor, o.kind) for o in owed] == [("brewbar", "northjet", "conversion")]


async def test_converting_remote_points_into_a_hosted_pool(gw: Gateway, northjet: ReferencePartner):
    member = await member_at_northjet(gw)
    result = await convert(gw, member, "northjet", "brewbar", 400, "c-2")
    assert result["userErrors"] == []
    assert result["toWallet"]["balance"] == 100
    assert northjet.balance_of("NJ-1") == 600
    short = await convert(gw, member, "northjet", "brewbar", 900, "c-3")
    assert codes(short) == ["INSUFFICIENT_POINTS"]
    assert northjet.balance_of("NJ-1") == 600 and await brewbar_stars(gw, member) == 100


async def test_a_refusal_after_the_wallet_was_debited_gives_the_points_back(
    gw: Gateway, northjet: ReferencePartner
):
    northjet.add_member("NJ-404")
    member = await member_at_northjet(gw, "NJ-404")
    northjet.reset({"NJ-1": 1000, "NJ-2": 0})  # then the partner closes the account
    await stars(gw, member, 100)
    result = await convert(gw, member, "brewbar", "northjet", 40, "c-1")
    assert codes(result) == ["PARTNER_REFUSED"]
    assert "went back to the wallet at 'brewbar'" in result["userErrors"][0]["message"]
    assert await brewbar_stars(gw, member) == 100
    assert await transfers_of(gw, member) == ["conversion", "earn", "reversal"]
    (operation,) = await operations(gw)
    assert operation.status == COMPENSATED and operation.compensation_id is not None
    again = await convert(gw, member, "brewbar", "northjet", 40, "c-1")
    assert codes(again) == ["PARTNER_REFUSED"]
    assert await transfers_of(gw, member) == ["conversion", "earn", "reversal"]
    async with gw.service.engine.connect() as connection:
        owed = (await connection.execute(sa.select(obligations))).all()
    # The liability moved and came back: the two obligations cancel out.
    assert sorted((o.debtor, o.creditor) for o in owed) == [
        ("brewbar", "northjet"),
        ("northjet", "brewbar"),
    ]


# ---- faults at each remote step -------------------------------------------------------------

STEPS = ("earn", "redeem", "to_remote", "from_remote")


async def run_step(gw: Gateway, step: str, member: str, key: str) -> dict[str, Any]:
    if step == "earn":
        return await earn(gw, member, 100, key, "northjet")
    if step == "redeem":
        return await redeem(gw, member, 100, key, "northjet")
    if step == "to_remote":
        return await convert(gw, member, "brewbar", "northjet", 25, key)
    return await convert(gw, member, "northjet", "brewbar", 400, key)


# What the step leaves once done: (points at the partner, stars at the gateway).
DONE = {
    "earn": (1100, 100),
    "redeem": (900, 100),
    "to_remote": (1100, 75),
    "from_remote": (600, 200),
}
BEFORE = (1000, 100)


async def settled(gw: Gateway, northjet: ReferencePartner, member: str) -> tuple[int, int]:
    northjet.wait_idle(10)
    return northjet.balance_of("NJ-1"), await brewbar_stars(gw, member)


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("mode", MODES)
async def test_one_fault_at_the_remote_step_is_absorbed_by_the_retry(
    gw: Gateway, northjet: ReferencePartner, step: str, mode: Any
):
    member = await member_at_northjet(gw)
    await stars(gw, member, 100)
    northjet.fail_next(TRANSACTIONS, mode)
    result = await run_step(gw, step, member, "k-1")
    assert result["userErrors"] == [], result
    assert await settled(gw, northjet, member) == DONE[step]
    assert len(real_transactions(northjet)) == 1
    assert [o.status for o in await operations(gw)] == [COMPLETED]
    replay = await run_step(gw, step, member, "k-1")
    assert replay["idempotentReplay"] is True
    assert await settled(gw, northjet, member) == DONE[step]


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("done", [False, True], ids=["not-done", "done"])
async def test_an_unknown_outcome_stays_pending_and_is_finished_later_exactly_once(
    gw: Gateway, northjet: ReferencePartner, step: str, done: bool
):
    """Every send fails, and so does the lookup: the gateway cannot know. It neither
    compensates nor gives up; the job finishes the step with the same key."""
    member = await member_at_northjet(gw)
    await stars(gw, member, 100)
    northjet.fail_next(TRANSACTIONS, "error_after" if done else "error", times=2)
    northjet.fail_next(BY_KEY, "error")
    result = await run_step(gw, step, member, "k-1")
    assert codes(result) == ["PARTNER_UNAVAILABLE"]
    assert "retrying with the same idempotency key is safe" in result["userErrors"][0]["message"]
    (operation,) = await operations(gw)
    assert operation.status == PENDING and operation.attempts == 1
    partner_points, gateway_stars = await settled(gw, northjet, member)
    # Only what is known happened: the partner's side if it was done, the gateway's own
    # first step of a hosted -> remote conversion; nothing was compensated.
    expected_partner = DONE[step][0] if done else BEFORE[0]
    expected_stars = DONE[step][1] if step == "to_remote" else BEFORE[1]
    assert (partner_points, gateway_stars) == (expected_partner, expected_stars)
    # Not due yet: the job leaves it alone.
    assert await gw.service.remote.resume_due() == {
        COMPLETED: 0,
        FAILED: 0,
        COMPENSATED: 0,
        PENDING: 0,
    }
    gw.clock.now += operation.next_attempt_at - gw.clock.now
    counts = await gw.service.remote.resume_due()
    assert counts[COMPLETED] == 1
    assert await settled(gw, northjet, member) == DONE[step]
    assert len(real_transactions(northjet)) == 1
    assert [o.status for o in await operations(gw)] == [COMPLETED]
    retry = await run_step(gw, step, member, "k-1")
    assert retry["userErrors"] == [] and retry["idempotentReplay"] is True


async def test_the_callers_retry_drives_a_pending_operation(
    gw: Gateway, northjet: ReferencePartner
):
    member = await member_at_northjet(gw)
    await stars(gw, member, 100)
    northjet.fail_next(TRANSACTIONS, "timeout_after", times=2)
    northjet.fail_next(BY_KEY, "error")
    first = await run_step(gw, "to_remote", member, "k-1")
    assert codes(first) == ["PARTNER_UNAVAILABLE"]
    second = await run_step(gw, "to_remote", member, "k-1")
    assert second["userErrors"] == [] and second["transfer"]["receivedPoints"] == 100
    assert await settled(gw, northjet, member) == DONE["to_remote"]
    assert len(real_transactions(northjet)) == 1


async def test_a_pending_conversion_the_partner_then_refuses_is_compensated(
    gw: Gateway, northjet: ReferencePartner
):
    member = await member_at_northjet(gw)
    await stars(gw, member, 100)
    northjet.fail_next(TRANSACTIONS, "error", times=2)
    northjet.fail_next(BY_KEY, "error")
    assert codes(await run_step(gw, "to_remote", member, "k-1")) == ["PARTNER_UNAVAILABLE"]
    assert await brewbar_stars(gw, member) == 75
    northjet.reset({})  # the partner closed the account meanwhile: it now refuses
    (operation,) = await operations(gw)
    gw.clock.now = operation.next_attempt_at
    assert (await gw.service.remote.resume_due())[COMPENSATED] == 1
    assert await brewbar_stars(gw, member) == 100
    assert [o.status for o in await operations(gw)] == [COMPENSATED]
    answer = await run_step(gw, "to_remote", member, "k-1")
    assert codes(answer) == ["PARTNER_REFUSED"]


async def test_racing_drivers_settle_one_pending_operation_once(
    gw: Gateway, northjet: ReferencePartner
):
    member = await member_at_northjet(gw)
    await stars(gw, member, 100)
    northjet.fail_next(TRANSACTIONS, "error", times=2)
    northjet.fail_next(BY_KEY, "error")
    assert codes(await run_step(gw, "from_remote", member, "k-1")) == ["PARTNER_UNAVAILABLE"]
    (operation,) = await operations(gw)
    gw.clock.now = operation.next_attempt_at
    results = await asyncio.gather(
        gw.service.remote.resume_due(),
        gw.service.remote.resume_due(),
        run_step(gw, "from_remote", member, "k-1"),
    )
    assert results[2]["userErrors"] == []
    assert await settled(gw, northjet, member) == DONE["from_remote"]
    assert len(real_transactions(northjet)) == 1
    assert await transfers_of(gw, member) == ["conversion", "earn"]


# ---- enrolment asks the partner (issue 10, item 8) -------------------------------------------

ENROL_AT = f"""
mutation($customer: String!) {{
  enrolMember(input: {{partner: "northjet", partnerCustomerId: $customer}}) {{
    member {{ id wallets {{ partner {{ slug }} balance }} }} created {ERRORS}
  }}
}}"""
BY_ENROLMENT = """
query($customer: String!) {
  memberByEnrolment(partner: "northjet", partnerCustomerId: $customer) { id }
}"""


async def enrol_at_northjet(gw: Gateway, customer: str) -> dict[str, Any]:
    return payload(await gw.gql(ENROL_AT, {"customer": customer}))


async def enrolled_as(gw: Gateway, customer: str) -> Any:
    return (await gw.gql(BY_ENROLMENT, {"customer": customer}))["data"]["memberByEnrolment"]


async def test_enrolment_at_a_remote_partner_refuses_a_customer_it_does_not_know(
    gw: Gateway, northjet: ReferencePartner
):
    result = await enrol_at_northjet(gw, "NJ-404")
    assert codes(result) == ["UNKNOWN_CUSTOMER"] and result["member"] is None
    assert result["userErrors"][0]["field"] == ["input", "partnerCustomerId"]
    assert "NorthJet" in result["userErrors"][0]["message"]
    assert await enrolled_as(gw, "NJ-404") is None
    # A customer it knows is enrolled, with the balance it gives.
    known = await enrol_at_northjet(gw, "NJ-1")
    assert known["userErrors"] == [] and known["created"] is True
    wallets = {w["partner"]["slug"]: w["balance"] for w in known["member"]["wallets"]}
    assert wallets["northjet"] == 1000


async def test_enrolment_while_the_partner_does_not_answer_is_retryable(
    gw: Gateway, northjet: ReferencePartner
):
    northjet.fail_next(BALANCE, "error", times=5)
    result = await enrol_at_northjet(gw, "NJ-2")
    assert codes(result) == ["PARTNER_UNAVAILABLE"] and result["member"] is None
    assert "try again" in result["userErrors"][0]["message"]
    assert await enrolled_as(gw, "NJ-2") is None
    northjet.faults.clear()
    again = await enrol_at_northjet(gw, "NJ-2")
    assert again["userErrors"] == [] and again["created"] is True
    # Once enrolled, enrolling again answers from the gateway alone.
    northjet.fail_next(BALANCE, "error", times=5)
    calls = len(northjet.calls)
    repeat = await enrol_at_northjet(gw, "NJ-2")
    assert repeat["userErrors"] == [] and repeat["created"] is False
    assert [c for c in northjet.calls[calls:] if c.method == "POST"] == []


async def test_a_customer_the_partner_no_longer_knows_has_no_wallet_there(
    gw: Gateway, northjet: ReferencePartner
):
    member = await member_at_northjet(gw, "NJ-2")
    wallets = payload(await gw.gql(WALLETS, {"id": member}))["wallets"]
    assert {w["partner"]["slug"]: w["balance"] for w in wallets}["northjet"] == 0
    northjet.reset({"NJ-1": 1000})  # the partner closed NJ-2's account
    wallets = payload(await gw.gql(WALLETS, {"id": member}))["wallets"]
    assert "northjet" not in {w["partner"]["slug"] for w in wallets}
