"""Point-of-sale holds over HTTP, on SQLite and PostgreSQL: authorize, capture in full or in
part, void, expiry (on demand, in the background and from the CLI), racing settlements,
and who may do what."""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.api.cli import main
from tests.conftest import Clock, Gateway, start_gateway
from tests.operations import ERRORS, REDEEM, TRANSFER_FIELDS, codes, payload
from tests.sso import Brands
from tests.test_api import earn, enrol

HOLD_FIELDS = """
  id points capturedPoints status reason createdAt expiresAt settledAt partner { slug }
  holdTransfer { id kind } settleTransfer { id kind }
"""
HOLD_PAYLOAD = f"""
  hold {{ {HOLD_FIELDS} }}
  transfer {{ {TRANSFER_FIELDS} }}
  wallet {{ balance held available }}
  idempotentReplay {ERRORS}
"""
AUTHORIZE = f"""
mutation($input: AuthorizeRedemptionInput!) {{
  authorizeRedemption(input: $input) {{ {HOLD_PAYLOAD} }}
}}"""
CAPTURE = f"""
mutation($input: CaptureRedemptionInput!) {{
  captureRedemption(input: $input) {{ {HOLD_PAYLOAD} }}
}}"""
VOID = f"""
mutation($input: VoidRedemptionInput!) {{
  voidRedemption(input: $input) {{ {HOLD_PAYLOAD} }}
}}"""
WALLET = f"""
query($id: ID!, $status: HoldStatus, $first: Int! = 20) {{
  member(id: $id) {{
    wallet(partner: "skyway") {{ balance held available }}
    holds(status: $status, first: $first) {{ {HOLD_FIELDS} }}
  }}
}}"""
NODE = f"query($id: ID!) {{ node(id: $id) {{ id ... on Hold {{ {HOLD_FIELDS} }} }} }}"
ME = "{ me { id } }"


# Helpers


async def member_with(gateway: Gateway, points: int = 1000) -> str:
    member = await enrol(gateway)
    assert (await earn(gateway, member, points, "E-start"))["userErrors"] == []
    return member


async def authorize(
    gateway: Gateway,
    member: str,
    points: int,
    key: str,
    token: str | None = None,
    seconds: int | None = None,
    partner: str = "skyway",
    reason: str | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "partner": partner,
        "member": {"id": member},
        "points": points,
        "idempotencyKey": key,
    }
    if seconds is not None:
        data["expiresInSeconds"] = seconds
    if reason is not None:
        data["reason"] = reason
    return payload(await gateway.gql(AUTHORIZE, {"input": data}, token=token))


async def capture(
    gateway: Gateway, hold: str, key: str, points: int | None = None, token: str | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {"holdId": hold, "idempotencyKey": key}
    if points is not None:
        data["points"] = points
    return payload(await gateway.gql(CAPTURE, {"input": data}, token=token))


async def void(gateway: Gateway, hold: str, key: str, token: str | None = None) -> dict[str, Any]:
    data = {"holdId": hold, "idempotencyKey": key}
    return payload(await gateway.gql(VOID, {"input": data}, token=token))


async def placed(gateway: Gateway, member: str, points: int, key: str, **kw: Any) -> str:
    """Authorize a hold that must succeed; its id."""
    result = await authorize(gateway, member, points, key, **kw)
    assert result["userErrors"] == [], result
    hold_id: str = result["hold"]["id"]
    return hold_id


async def state(gateway: Gateway, member: str, **variables: Any) -> dict[str, Any]:
    """The member's skyway wallet and holds, as the operator sees them."""
    body = await gateway.gql(WALLET, {"id": member, **variables})
    found: dict[str, Any] = body["data"]["member"]
    return found


async def wallet(gateway: Gateway, member: str) -> dict[str, int]:
    found: dict[str, int] = (await state(gateway, member))["wallet"]
    return found


async def hold_of(gateway: Gateway, hold: str, token: str | None = None) -> dict[str, Any] | None:
    node: dict[str, Any] | None = (await gateway.gql(NODE, {"id": hold}, token=token))["data"][
        "node"
    ]
    return node


async def transfer_count(gateway: Gateway, member: str) -> int:
    query = "query($id: ID!) { member(id: $id) { transfers(first: 100) { edges { cursor } } } }"
    body = await gateway.gql(query, {"id": member})
    return len(body["data"]["member"]["transfers"]["edges"])


def legs(transfer: dict[str, Any]) -> list[tuple[str, int]]:
    return sorted((leg["account"], leg["amount"]) for leg in transfer["legs"])


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def global_id(type_name: str, value: str) -> str:
    return base64.b64encode(f"{type_name}:{value}".encode()).decode()


# 1. Authorize


async def test_authorize_sets_points_aside_without_changing_the_balance(
    gateway: Gateway, clock: Clock
):
    member = await member_with(gateway, 1000)
    result = await authorize(gateway, member, 300, "H-1", seconds=600, reason="till 4")
    assert result["userErrors"] == [] and result["idempotentReplay"] is False
    hold = result["hold"]
    assert hold["status"] == "AUTHORIZED" and hold["points"] == 300
    assert hold["capturedPoints"] is None and hold["settledAt"] is None
    assert hold["reason"] == "till 4" and hold["partner"] == {"slug": "skyway"}
    assert moment(hold["createdAt"]) == clock.now
    assert moment(hold["expiresAt"]) == clock.now + timedelta(seconds=600)
    transfer = result["transfer"]
    assert transfer["kind"] == "HOLD" and transfer["points"] == 300
    assert legs(transfer) == [("HOLDS", 300), ("WALLET", -300)]
    assert hold["holdTransfer"] == {"id": transfer["id"], "kind": "HOLD"}
    assert hold["settleTransfer"] is None
    assert result["wallet"] == {"balance": 1000, "held": 300, "available": 700}
    found = await state(gateway, member)
    assert found["wallet"] == {"balance": 1000, "held": 300, "available": 700}
    assert [h["id"] for h in found["holds"]] == [hold["id"]]
    assert found["holds"][0] == hold
    default = await authorize(gateway, member, 10, "H-default")
    assert moment(default["hold"]["expiresAt"]) == clock.now + timedelta(minutes=15)


async def test_member_holds_filter_by_status_newest_first(gateway: Gateway):
    member = await member_with(gateway, 1000)
    first = await placed(gateway, member, 10, "H-1")
    second = await placed(gateway, member, 20, "H-2")
    third = await placed(gateway, member, 30, "H-3")
    assert (await capture(gateway, first, "C-1"))["userErrors"] == []
    assert (await void(gateway, second, "V-2"))["userErrors"] == []
    holds = (await state(gateway, member))["holds"]
    assert [h["id"] for h in holds] == [third, second, first]
    assert [h["status"] for h in holds] == ["AUTHORIZED", "VOIDED", "CAPTURED"]
    assert [h["id"] for h in (await state(gateway, member, status="AUTHORIZED"))["holds"]] == [
        third
    ]
    assert [h["id"] for h in (await state(gateway, member, status="CAPTURED"))["holds"]] == [first]
    assert [h["id"] for h in (await state(gateway, member, first=1))["holds"]] == [third]
    assert (await wallet(gateway, member)) == {"balance": 990, "held": 30, "available": 960}


async def test_bad_lifetimes_and_amounts_are_refused(gateway: Gateway):
    member = await member_with(gateway)
    for points in (0, -10):
        assert codes(await authorize(gateway, member, points, f"H{points}")) == [
            "AMOUNT_NOT_POSITIVE"
        ]
    for seconds in (0, -5, 8 * 24 * 3600, 2**31 - 1):
        result = await authorize(gateway, member, 10, f"H-{seconds}", seconds=seconds)
        assert codes(result) == ["INVALID_INPUT"], seconds
        assert result["hold"] is None
    assert await wallet(gateway, member) == {"balance": 1000, "held": 0, "available": 1000}
    # The bounds themselves are accepted.
    assert (await authorize(gateway, member, 1, "H-one", seconds=1))["userErrors"] == []
    assert (await authorize(gateway, member, 1, "H-week", seconds=7 * 24 * 3600))[
        "userErrors"
    ] == []


# 2. Capture


async def test_capture_in_full_spends_the_held_points(gateway: Gateway, clock: Clock):
    member = await member_with(gateway, 1000)
    hold = await placed(gateway, member, 300, "H-1")
    clock.now += timedelta(minutes=1)
    result = await capture(gateway, hold, "C-1")
    assert result["userErrors"] == [] and result["idempotentReplay"] is False
    assert result["hold"]["status"] == "CAPTURED" and result["hold"]["capturedPoints"] == 300
    assert moment(result["hold"]["settledAt"]) == clock.now
    transfer = result["transfer"]
    assert transfer["kind"] == "CAPTURE" and transfer["points"] == 300
    assert legs(transfer) == [("HOLDS", -300), ("REDEMPTION", 300)]
    assert result["hold"]["settleTransfer"] == {"id": transfer["id"], "kind": "CAPTURE"}
    assert await wallet(gateway, member) == {"balance": 700, "held": 0, "available": 700}


async def test_capture_in_full_answers_with_the_wallet(gateway: Gateway):
    """HoldPayload.wallet is "the member's wallet at the partner as this left it"; a full
    capture has no WALLET leg, so the payload must still show the wallet."""
    member = await member_with(gateway, 1000)
    hold = await placed(gateway, member, 300, "H-1")
    result = await capture(gateway, hold, "C-1")
    assert result["userErrors"] == []
    assert result["wallet"] == {"balance": 700, "held": 0, "available": 700}


async def test_a_capture_in_full_shows_in_the_members_history(gateway: Gateway):
    """Member.transfers lists transfers with an entry in the member's wallet; a full capture
    posts only HOLDS -> REDEMPTION, so the redemption itself goes missing from history."""
    member = await member_with(gateway, 1000)
    hold = await placed(gateway, member, 300, "H-1")
    captured = await capture(gateway, hold, "C-1")
    assert captured["userErrors"] == []
    query = """query($id: ID!) { member(id: $id) {
      transfers(first: 10) { edges { node { id kind } } } } }"""
    body = await gateway.gql(query, {"id": member})
    kinds = [edge["node"]["kind"] for edge in body["data"]["member"]["transfers"]["edges"]]
    assert kinds == ["CAPTURE", "HOLD", "EARN"]


async def test_capture_in_part_releases_the_rest(gateway: Gateway):
    member = await member_with(gateway, 1000)
    hold = await placed(gateway, member, 300, "H-1")
    assert (await wallet(gateway, member))["available"] == 700
    result = await capture(gateway, hold, "C-1", points=120)
    assert result["userErrors"] == []
    assert result["hold"]["status"] == "CAPTURED" and result["hold"]["capturedPoints"] == 120
    assert result["hold"]["points"] == 300
    transfer = result["transfer"]
    assert transfer["kind"] == "CAPTURE" and transfer["points"] == 120
    assert legs(transfer) == [("HOLDS", -300), ("REDEMPTION", 120), ("WALLET", 180)]
    assert result["wallet"] == {"balance": 880, "held": 0, "available": 880}
    # available went up by 300 - 120 from 700
    assert await wallet(gateway, member) == {"balance": 880, "held": 0, "available": 880}


async def test_capture_more_than_held_or_nothing_is_out_of_bounds(gateway: Gateway):
    member = await member_with(gateway, 1000)
    hold = await placed(gateway, member, 300, "H-1")
    assert codes(await capture(gateway, hold, "C-big", points=301)) == ["AMOUNT_OUT_OF_BOUNDS"]
    # Nothing or less is refused as everywhere else in the API.
    assert codes(await capture(gateway, hold, "C-zero", points=0)) == ["AMOUNT_NOT_POSITIVE"]
    assert codes(await capture(gateway, hold, "C-neg", points=-1)) == ["AMOUNT_NOT_POSITIVE"]
    found = await state(gateway, member)
    assert found["holds"][0]["status"] == "AUTHORIZED"
    assert found["wallet"] == {"balance": 1000, "held": 300, "available": 700}
    # Still open: the exact amount held can be captured.
    assert (await capture(gateway, hold, "C-ok", points=300))["userErrors"] == []


# 3. Void


async def test_void_releases_the_hold(gateway: Gateway, clock: Clock):
    member = await member_with(gateway, 1000)
    hold = await placed(gateway, member, 300, "H-1")
    clock.now += timedelta(minutes=2)
    result = await void(gateway, hold, "V-1")
    assert result["userErrors"] == [] and result["idempotentReplay"] is False
    assert result["hold"]["status"] == "VOIDED" and result["hold"]["capturedPoints"] is None
    assert moment(result["hold"]["settledAt"]) == clock.now
    transfer = result["transfer"]
    assert transfer["kind"] == "RELEASE" and transfer["points"] == 300
    assert legs(transfer) == [("HOLDS", -300), ("WALLET", 300)]
    assert result["wallet"] == {"balance": 1000, "held": 0, "available": 1000}
    assert await wallet(gateway, member) == {"balance": 1000, "held": 0, "available": 1000}


# 4. Settled once, idempotent retries, unknown holds


async def test_a_second_capture_is_hold_not_open(gateway: Gateway):
    member = await member_with(gateway, 1000)
    hold = await placed(gateway, member, 300, "H-1")
    assert (await capture(gateway, hold, "C-1", points=100))["userErrors"] == []
    second = await capture(gateway, hold, "C-2", points=100)
    assert codes(second) == ["HOLD_NOT_OPEN"] and second["transfer"] is None
    assert codes(await capture(gateway, hold, "C-3")) == ["HOLD_NOT_OPEN"]
    assert await wallet(gateway, member) == {"balance": 900, "held": 0, "available": 900}


async def test_void_after_capture_and_capture_after_void_are_hold_not_open(gateway: Gateway):
    member = await member_with(gateway, 1000)
    captured = await placed(gateway, member, 300, "H-1")
    voided = await placed(gateway, member, 200, "H-2")
    assert (await capture(gateway, captured, "C-1"))["userErrors"] == []
    assert (await void(gateway, voided, "V-2"))["userErrors"] == []
    assert codes(await void(gateway, captured, "V-1")) == ["HOLD_NOT_OPEN"]
    assert codes(await capture(gateway, voided, "C-2")) == ["HOLD_NOT_OPEN"]
    assert codes(await void(gateway, voided, "V-again")) == ["HOLD_NOT_OPEN"]
    assert await wallet(gateway, member) == {"balance": 700, "held": 0, "available": 700}
    statuses = [h["status"] for h in (await state(gateway, member))["holds"]]
    assert statuses == ["VOIDED", "CAPTURED"]


async def test_retries_with_the_same_key_replay_and_post_once(gateway: Gateway):
    member = await member_with(gateway, 1000)
    first = await authorize(gateway, member, 300, "H-1")
    again = await authorize(gateway, member, 300, "H-1")
    assert again["idempotentReplay"] is True and again["userErrors"] == []
    assert again["hold"]["id"] == first["hold"]["id"]
    assert again["transfer"]["id"] == first["transfer"]["id"]
    assert await wallet(gateway, member) == {"balance": 1000, "held": 300, "available": 700}
    hold = first["hold"]["id"]

    captured = await capture(gateway, hold, "C-1", points=100)
    retried = await capture(gateway, hold, "C-1", points=100)
    assert retried["userErrors"] == [] and retried["idempotentReplay"] is True
    assert retried["transfer"]["id"] == captured["transfer"]["id"]
    assert retried["hold"]["status"] == "CAPTURED" and retried["hold"]["capturedPoints"] == 100
    assert await wallet(gateway, member) == {"balance": 900, "held": 0, "available": 900}
    # start earn + hold + capture
    assert await transfer_count(gateway, member) == 3

    other = await placed(gateway, member, 200, "H-2")
    voided = await void(gateway, other, "V-2")
    retried = await void(gateway, other, "V-2")
    assert retried["userErrors"] == [] and retried["idempotentReplay"] is True
    assert retried["transfer"]["id"] == voided["transfer"]["id"]
    assert retried["hold"]["status"] == "VOIDED"
    assert await wallet(gateway, member) == {"balance": 900, "held": 0, "available": 900}
    assert await transfer_count(gateway, member) == 5


async def test_a_replayed_authorization_answers_as_the_first_time(gateway: Gateway):
    member = await member_with(gateway, 1000)
    first = await authorize(gateway, member, 300, "H-1")
    assert first["wallet"] == {"balance": 1000, "held": 300, "available": 700}
    await placed(gateway, member, 200, "H-2")
    assert (await void(gateway, first["hold"]["id"], "V-1"))["userErrors"] == []
    again = await authorize(gateway, member, 300, "H-1")
    assert again["idempotentReplay"] is True
    wallet_now = await wallet(gateway, member)
    assert wallet_now == {"balance": 1000, "held": 200, "available": 800}
    # The first answer, or the wallet as it stands; not a mix of the two.
    assert again["wallet"] in (first["wallet"], wallet_now)


async def test_the_same_key_with_other_points_is_refused(gateway: Gateway):
    member = await member_with(gateway, 1000)
    hold = await placed(gateway, member, 300, "H-1")
    assert codes(await authorize(gateway, member, 301, "H-1")) == ["IDEMPOTENCY_KEY_REUSED"]
    assert (await capture(gateway, hold, "C-1", points=100))["userErrors"] == []
    assert codes(await capture(gateway, hold, "C-1", points=200)) == ["IDEMPOTENCY_KEY_REUSED"]
    assert await wallet(gateway, member) == {"balance": 900, "held": 0, "available": 900}


async def test_unknown_or_garbage_hold_ids_are_unknown_hold(gateway: Gateway):
    member = await member_with(gateway, 1000)
    await placed(gateway, member, 300, "H-1")
    for hold in (
        global_id("Hold", "999999"),
        global_id("Hold", "not-a-number"),
        global_id("Hold", "99999999999999999999999"),
        global_id("Member", member),
        "garbage",
        "",
    ):
        assert codes(await capture(gateway, hold, f"C-{hold}")) == ["UNKNOWN_HOLD"], hold
        assert codes(await void(gateway, hold, f"V-{hold}")) == ["UNKNOWN_HOLD"], hold
    assert await wallet(gateway, member) == {"balance": 1000, "held": 300, "available": 700}


# 5. Racing settlements


async def test_racing_capture_and_void_settle_each_hold_once(gateway: Gateway):
    member = await member_with(gateway, 10_000)
    holds = [await placed(gateway, member, 100 + i, f"H-{i}") for i in range(15)]
    calls = []
    for i, hold in enumerate(holds):
        calls.append(capture(gateway, hold, f"C-{i}", points=50 + i))
        calls.append(void(gateway, hold, f"V-{i}"))
    results = await asyncio.gather(*calls)
    captured = 0
    for i in range(15):
        captured_result, void_result = results[2 * i], results[2 * i + 1]
        outcomes = sorted([codes(captured_result), codes(void_result)])
        assert outcomes == [[], ["HOLD_NOT_OPEN"]], (i, captured_result, void_result)
        if captured_result["userErrors"] == []:
            captured += 50 + i
            assert captured_result["hold"]["status"] == "CAPTURED"
        else:
            assert void_result["hold"]["status"] == "VOIDED"
    assert await wallet(gateway, member) == {
        "balance": 10_000 - captured,
        "held": 0,
        "available": 10_000 - captured,
    }
    statuses = {h["status"] for h in (await state(gateway, member))["holds"]}
    assert statuses <= {"CAPTURED", "VOIDED"}


# 6. Holds and spending


async def test_authorize_more_than_available_is_insufficient_points(gateway: Gateway):
    member = await member_with(gateway, 1000)
    assert codes(await authorize(gateway, member, 1001, "H-1")) == ["INSUFFICIENT_POINTS"]
    await placed(gateway, member, 600, "H-2")
    assert codes(await authorize(gateway, member, 401, "H-3")) == ["INSUFFICIENT_POINTS"]
    assert (await authorize(gateway, member, 400, "H-4"))["userErrors"] == []
    assert await wallet(gateway, member) == {"balance": 1000, "held": 1000, "available": 0}


async def test_redeem_spends_only_what_is_available(gateway: Gateway):
    member = await member_with(gateway, 1000)
    await placed(gateway, member, 600, "H-1")

    async def redeem(points: int, key: str) -> dict[str, Any]:
        variables = {
            "input": {
                "partner": "skyway",
                "member": {"id": member},
                "points": points,
                "idempotencyKey": key,
            }
        }
        return payload(await gateway.gql(REDEEM, variables))

    assert codes(await redeem(401, "R-1")) == ["INSUFFICIENT_POINTS"]
    assert (await redeem(400, "R-2"))["userErrors"] == []
    assert await wallet(gateway, member) == {"balance": 600, "held": 600, "available": 0}


# 7. Expiry


async def test_capture_after_expiry_is_hold_expired(gateway: Gateway, clock: Clock):
    member = await member_with(gateway, 1000)
    hold = await placed(gateway, member, 300, "H-1", seconds=60)
    early = await placed(gateway, member, 10, "H-early", seconds=60)
    clock.now += timedelta(seconds=59)
    assert (await capture(gateway, early, "C-early"))["userErrors"] == []
    clock.now += timedelta(seconds=1)  # expiresAt is the first instant it is expired
    result = await capture(gateway, hold, "C-1")
    assert codes(result) == ["HOLD_EXPIRED"] and result["transfer"] is None
    found = await hold_of(gateway, hold)
    assert found is not None
    assert found["status"] == "AUTHORIZED" and found["capturedPoints"] is None
    assert found["settleTransfer"] is None and found["settledAt"] is None
    assert await wallet(gateway, member) == {"balance": 990, "held": 300, "available": 690}


async def test_expire_due_releases_an_expired_hold_once(gateway: Gateway, clock: Clock):
    member = await member_with(gateway, 1000)
    hold = await placed(gateway, member, 300, "H-1", seconds=60)
    keep = await placed(gateway, member, 100, "H-2", seconds=3600)
    assert await gateway.app.state.holds.expire_due() == 0
    clock.now += timedelta(seconds=61)
    assert await gateway.app.state.holds.expire_due() == 1
    found = await hold_of(gateway, hold)
    assert found is not None and found["status"] == "EXPIRED"
    assert moment(found["settledAt"]) == clock.now
    assert found["settleTransfer"]["kind"] == "RELEASE"
    assert await wallet(gateway, member) == {"balance": 1000, "held": 100, "available": 900}
    assert await gateway.app.state.holds.expire_due() == 0
    assert (await hold_of(gateway, keep) or {})["status"] == "AUTHORIZED"
    assert codes(await capture(gateway, hold, "C-1")) == ["HOLD_NOT_OPEN"]
    assert codes(await void(gateway, hold, "V-1")) == ["HOLD_NOT_OPEN"]
    assert await wallet(gateway, member) == {"balance": 1000, "held": 100, "available": 900}


async def test_concurrent_expiry_sweeps_release_each_hold_once(gateway: Gateway, clock: Clock):
    member = await member_with(gateway, 1000)
    for i in range(3):
        await placed(gateway, member, 100, f"H-{i}", seconds=60)
    clock.now += timedelta(minutes=5)
    holds = gateway.app.state.holds
    released = await asyncio.gather(*(holds.expire_due() for _ in range(4)))
    assert sum(released) == 3, released
    assert await holds.expire_due() == 0
    assert await wallet(gateway, member) == {"balance": 1000, "held": 0, "available": 1000}
    statuses = [h["status"] for h in (await state(gateway, member))["holds"]]
    assert statuses == ["EXPIRED"] * 3
    # three holds and three releases, nothing twice
    assert await transfer_count(gateway, member) == 1 + 3 + 3


async def test_voiding_an_expired_hold_not_yet_swept_releases_it(gateway: Gateway, clock: Clock):
    member = await member_with(gateway, 1000)
    hold = await placed(gateway, member, 300, "H-1", seconds=60)
    clock.now += timedelta(minutes=5)
    result = await void(gateway, hold, "V-1")
    assert result["userErrors"] == []
    assert result["hold"]["status"] == "VOIDED" and result["transfer"]["kind"] == "RELEASE"
    assert await wallet(gateway, member) == {"balance": 1000, "held": 0, "available": 1000}
    assert await gateway.app.state.holds.expire_due() == 0


async def test_the_background_sweep_releases_expired_holds(tmp_path: Path):
    clock = Clock()
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'sweep.db'}"
    # Settings.hold_sweep_seconds is an int: the shortest period is one second.
    async for gateway in start_gateway(database_url, clock, hold_sweep_seconds=1):
        member = await member_with(gateway, 1000)
        hold = await placed(gateway, member, 300, "H-1", seconds=60)
        clock.now += timedelta(minutes=2)
        deadline = time.monotonic() + 5
        status = "AUTHORIZED"
        while status == "AUTHORIZED" and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            status = (await hold_of(gateway, hold) or {})["status"]
        assert status == "EXPIRED"
        assert await wallet(gateway, member) == {"balance": 1000, "held": 0, "available": 1000}


async def test_the_cli_releases_expired_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    # The CLI runs on the real clock; the gateway's clock is in the past, so a hold that
    # lasts a minute there has long expired in real time.
    clock = Clock(datetime.now(UTC) - timedelta(hours=1))
    path = tmp_path / "cli.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("COALITION_DEMO_DATA", "false")
    async for gateway in start_gateway(f"sqlite+aiosqlite:///{path}", clock):
        member = await member_with(gateway, 1000)
        hold = await placed(gateway, member, 300, "H-1", seconds=60)
        await placed(gateway, member, 100, "H-2", seconds=7 * 24 * 3600)
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["expire-holds"]) == 0
        assert "Released 1 expired hold(s)." in capsys.readouterr().out
        assert (await hold_of(gateway, hold) or {})["status"] == "EXPIRED"
        assert await wallet(gateway, member) == {"balance": 1000, "held": 100, "available": 900}
        assert await asyncio.to_thread(main, ["expire-holds"]) == 0
        assert "Released 0 expired hold(s)." in capsys.readouterr().out


# 10. Access


async def test_another_partners_app_cannot_see_or_settle_a_hold(gateway: Gateway):
    member = await member_with(gateway, 1000)
    hold = await placed(gateway, member, 300, "H-1")
    brewbar = await gateway.partner_token("brewbar")
    found = await hold_of(gateway, hold)  # the operator's view
    assert found is not None and found["id"] == hold and found["points"] == 300
    assert await hold_of(gateway, hold, token=brewbar) is None
    assert codes(await capture(gateway, hold, "C-1", token=brewbar)) == ["UNKNOWN_HOLD"]
    assert codes(await void(gateway, hold, "V-1", token=brewbar)) == ["UNKNOWN_HOLD"]
    denied = await authorize(gateway, member, 10, "H-2", token=brewbar)
    assert codes(denied) == ["ACCESS_DENIED"]
    assert await wallet(gateway, member) == {"balance": 1000, "held": 300, "available": 700}


async def test_the_holding_partners_app_sees_and_settles_its_hold(gateway: Gateway):
    member = await member_with(gateway, 1000)
    skyway = await gateway.partner_token("skyway")
    hold = await placed(gateway, member, 300, "H-1", token=skyway)
    found = await hold_of(gateway, hold, token=skyway)
    assert found is not None and found["status"] == "AUTHORIZED"
    body = await gateway.gql(WALLET, {"id": member}, token=skyway)
    assert [h["id"] for h in body["data"]["member"]["holds"]] == [hold]
    assert (await capture(gateway, hold, "C-1", points=100, token=skyway))["userErrors"] == []
    assert await wallet(gateway, member) == {"balance": 900, "held": 0, "available": 900}


async def test_an_app_without_points_redeem_is_denied(gateway: Gateway):
    member = await member_with(gateway, 1000)
    hold = await placed(gateway, member, 300, "H-1")
    token = await gateway.partner_token("skyway", "members:read points:earn")
    assert codes(await authorize(gateway, member, 10, "H-2", token=token)) == ["ACCESS_DENIED"]
    assert codes(await capture(gateway, hold, "C-1", token=token)) == ["ACCESS_DENIED"]
    assert codes(await void(gateway, hold, "V-1", token=token)) == ["ACCESS_DENIED"]
    assert await wallet(gateway, member) == {"balance": 1000, "held": 300, "available": 700}


async def bob_with_miles(sso: Gateway, brands: Brands, miles: int = 10_000) -> tuple[str, str]:
    """Bob signs in with SkyWay (no second factor) and holds ``miles``."""
    token = brands.token("skyway", "bob")
    member: str = (await sso.gql(ME, token=token))["data"]["me"]["id"]
    assert (await earn(sso, member, miles, "E-bob"))["userErrors"] == []
    return member, token


async def test_a_member_may_hold_own_points_but_not_settle_the_hold(sso: Gateway, brands: Brands):
    member, token = await bob_with_miles(sso, brands)
    hold = await placed(sso, member, 1000, "M-1", token=token)
    found = await hold_of(sso, hold, token=token)
    assert found is not None and found["status"] == "AUTHORIZED" and found["points"] == 1000
    mine = (await sso.gql(WALLET, {"id": member}, token=token))["data"]["member"]
    assert [h["id"] for h in mine["holds"]] == [hold]
    assert codes(await capture(sso, hold, "C-1", token=token)) == ["ACCESS_DENIED"]
    assert codes(await void(sso, hold, "V-1", token=token)) == ["ACCESS_DENIED"]
    assert await wallet(sso, member) == {"balance": 10_000, "held": 1000, "available": 9000}
    # The operator can.
    assert (await void(sso, hold, "V-op"))["userErrors"] == []


async def test_a_member_cannot_hold_someone_elses_points(sso: Gateway, brands: Brands):
    _, token = await bob_with_miles(sso, brands)
    other = await member_with(sso, 1000)
    hold = await placed(sso, other, 100, "H-other")
    assert codes(await authorize(sso, other, 10, "M-1", token=token)) == ["ACCESS_DENIED"]
    assert await hold_of(sso, hold, token=token) is None
    assert codes(await capture(sso, hold, "C-1", token=token)) == ["UNKNOWN_HOLD"]


async def test_step_up_applies_to_a_members_hold(sso: Gateway, brands: Brands):
    member, token = await bob_with_miles(sso, brands)
    assert codes(await authorize(sso, member, 6000, "M-1", token=token)) == ["STEP_UP_REQUIRED"]
    assert (await wallet(sso, member))["held"] == 0
    with_mfa = brands.token("skyway", "bob", acr="mfa")
    assert (await authorize(sso, member, 6000, "M-2", token=with_mfa))["userErrors"] == []


async def test_holds_count_towards_step_up(sso: Gateway, brands: Brands):
    """Step-up counts what the member spent at the partner in the last 24 hours, so that
    splitting a large amount does not avoid it; a hold is spending too."""
    member, token = await bob_with_miles(sso, brands)
    assert (await authorize(sso, member, 5000, "M-1", token=token))["userErrors"] == []
    assert codes(await authorize(sso, member, 1000, "M-2", token=token)) == ["STEP_UP_REQUIRED"]
    assert (await wallet(sso, member))["held"] == 5000
    # and a redeem after the hold is counted with it
    variables = {
        "input": {
            "partner": "skyway",
            "member": {"id": member},
            "points": 1000,
            "idempotencyKey": "R-1",
        }
    }
    result = payload(await sso.gql(REDEEM, variables, token=token))
    assert codes(result) == ["STEP_UP_REQUIRED"]


async def test_reusing_a_holds_key_for_a_redeem_does_not_avoid_step_up(
    sso: Gateway, brands: Brands
):
    """Step-up leaves out the transfer with the call's own key (a retry must not count
    itself) but matches on the key alone, not on its scope: a hold and a redeem that share
    a key never count against each other."""
    member, token = await bob_with_miles(sso, brands)
    assert (await authorize(sso, member, 5000, "K", token=token))["userErrors"] == []
    variables = {
        "input": {
            "partner": "skyway",
            "member": {"id": member},
            "points": 5000,
            "idempotencyKey": "K",
        }
    }
    result = payload(await sso.gql(REDEEM, variables, token=token))
    assert codes(result) == ["STEP_UP_REQUIRED"]
    assert await wallet(sso, member) == {"balance": 10_000, "held": 5000, "available": 5000}
