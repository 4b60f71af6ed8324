"""Bulk earning (``earnPointsBulk``) as a partner's till sees it, over HTTP on both
databases: each line fails alone with its own code and field, duplicate keys in a batch, a
resent batch, racing resends and batches, points lines next to purchases, a line naming a
merged member, and the outbox's events. These pin today's behaviour for the set-based
rewrite (issue 12)."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.api.graphql.scalars import encode_id
from gateway.events.tables import outbox
from gateway.members.identity import IdentityService
from gateway.members.records import Proof
from tests.conftest import Gateway
from tests.operations import EARN, ENROL, ERRORS, TRANSFER_FIELDS, codes, payload

BULK = f"""
mutation($input: EarnPointsBulkInput!) {{
  earnPointsBulk(input: $input) {{
    succeeded failed {ERRORS}
    results {{
      index transfer {{ {TRANSFER_FIELDS} }} breakdown {{ rule description points }}
      pending idempotentReplay {ERRORS}
    }}
  }}
}}"""
WALLETS = "query($id: ID!) { member(id: $id) { id wallets { partner { slug } balance } } }"
GHOST = encode_id("Member", "00000000-0000-0000-0000-000000000000")


async def enrol(gateway: Gateway, customer: str, partner: str = "skyway") -> str:
    variables = {"input": {"partner": partner, "partnerCustomerId": customer}}
    result = payload(await gateway.gql(ENROL, variables))
    assert result["userErrors"] == []
    member: str = result["member"]["id"]
    return member


async def bulk(
    gateway: Gateway, lines: list[dict[str, Any]], partner: str = "skyway", token: str | None = None
) -> dict[str, Any]:
    body = await gateway.gql(BULK, {"input": {"partner": partner, "lines": lines}}, token=token)
    return payload(body)


def line(member: str, key: str, **fields: Any) -> dict[str, Any]:
    return {"member": {"id": member}, "idempotencyKey": key, **fields}


async def balances(gateway: Gateway, member: str) -> dict[str, int]:
    body = await gateway.gql(WALLETS, {"id": member})
    return {w["partner"]["slug"]: w["balance"] for w in body["data"]["member"]["wallets"] if w}


async def miles(gateway: Gateway, member: str) -> int:
    return (await balances(gateway, member))["skyway"]


async def count(gateway: Gateway, table: str) -> int:
    async with gateway.service.engine.connect() as connection:
        return int(await connection.scalar(sa.text(f"SELECT count(*) FROM {table}")) or 0)


def raw(global_id: str) -> str:
    return base64.b64decode(global_id).decode().split(":", 1)[1]


def field(result: dict[str, Any]) -> list[tuple[str, list[str]]]:
    return [(e["code"], e["field"]) for e in result["userErrors"]]


def wallet_after(result: dict[str, Any]) -> int:
    (after,) = [g["balanceAfter"] for g in result["transfer"]["legs"] if g["account"] == "WALLET"]
    return int(after)


# ---- 1. per-line errors --------------------------------------------------------------


async def test_each_bad_line_fails_alone_with_its_code_and_field_and_good_lines_post(
    gateway: Gateway,
):
    member = await enrol(gateway, "C-1")
    lines = [
        line(member, "good-1", points=10),
        line(GHOST, "ghost", points=5),
        line("not-a-member-id", "garbled", points=5),
        {"member": {"partnerCustomerId": "NOBODY"}, "idempotencyKey": "nobody", "points": 5},
        line(member, "negative-points", points=-5),
        line(member, "zero-points", points=0),
        line(member, "negative-amount", purchase={"amount": "-1"}),
        line(member, "zero-amount", purchase={"amount": "0"}),
        line(member, "five-decimals", purchase={"amount": "1.00001"}),
        line(member, "both", points=5, purchase={"amount": "3"}),
        line(member, "neither"),
        line(member, "k" * 256, points=5),
        line(member, "", points=5),
        line(member, "long-reason", points=5, reason="x" * 501),
        line(member, "control-reason", points=5, reason="bad\x07"),
        {"member": {"partnerCustomerId": "C-1"}, "idempotencyKey": "good-2", "points": 7},
        line(member, "too-many-points", points=1_000_000_001),
        line(member, "no-whole-point", purchase={"amount": "0.10"}),
        line(member, "long-sku", purchase={"lines": [{"amount": "1", "sku": "x" * 65}]}),
        line(member, "empty-purchase", purchase={}),
        line(member, "good-3", purchase={"amount": "12.50"}, reason="till 4"),
        line(member, "k" * 255, points=1),  # the longest key there may be
    ]
    body = await bulk(gateway, lines)
    results = body["results"]
    assert body["userErrors"] == [] and [r["index"] for r in results] == list(range(len(lines)))
    expected: dict[int, tuple[str, list[str]]] = {
        1: ("UNKNOWN_MEMBER", ["member", "id"]),
        2: ("UNKNOWN_MEMBER", ["member", "id"]),
        3: ("UNKNOWN_MEMBER", ["member", "partnerCustomerId"]),
        4: ("AMOUNT_NOT_POSITIVE", ["points"]),
        5: ("AMOUNT_NOT_POSITIVE", ["points"]),
        6: ("AMOUNT_NOT_POSITIVE", ["purchase", "amount"]),
        7: ("AMOUNT_NOT_POSITIVE", ["purchase", "amount"]),
        8: ("INVALID_INPUT", ["purchase", "amount"]),
        9: ("INVALID_INPUT", ["points"]),
        10: ("INVALID_INPUT", ["points"]),
        11: ("INVALID_INPUT", ["idempotencyKey"]),
        12: ("INVALID_INPUT", ["idempotencyKey"]),
        13: ("INVALID_INPUT", ["reason"]),
        14: ("INVALID_INPUT", ["reason"]),
        16: ("AMOUNT_OUT_OF_BOUNDS", ["points"]),
        17: ("AMOUNT_TOO_SMALL", ["purchase"]),
        18: ("INVALID_INPUT", ["purchase", "lines", "0", "sku"]),
        19: ("INVALID_INPUT", ["purchase"]),
    }
    for index, result in enumerate(results):
        if index in expected:
            code, path = expected[index]
            assert field(result) == [(code, ["input", "lines", str(index), *path])], index
            assert result["transfer"] is None and result["breakdown"] is None, index
            assert all(e["message"] for e in result["userErrors"])
        else:
            assert result["userErrors"] == [] and result["idempotentReplay"] is False, index
    assert (body["succeeded"], body["failed"]) == (4, len(expected))
    assert [results[i]["transfer"]["points"] for i in (0, 15, 20, 21)] == [10, 7, 25, 1]
    good = results[20]
    assert good["breakdown"] == [{"rule": "base", "description": "2 per unit spent", "points": 25}]
    assert good["transfer"]["purchaseAmount"] == "12.5" and good["transfer"]["reason"] == "till 4"
    assert good["transfer"]["member"]["id"] == member
    assert await miles(gateway, member) == 10 + 7 + 25 + 1
    assert await count(gateway, "transfers") == 4


async def test_more_than_ten_thousand_lines_is_refused_whole_and_posts_nothing(gateway: Gateway):
    member = await enrol(gateway, "C-1")
    lines = [line(member, f"k-{i}", points=1) for i in range(10_001)]
    body = await bulk(gateway, lines)
    assert field(body) == [("TOO_MANY_LINES", ["input", "lines"])]
    assert body["results"] == [] and (body["succeeded"], body["failed"]) == (0, 0)
    assert await miles(gateway, member) == 0 and await count(gateway, "transfers") == 0


async def test_a_partner_bulk_earns_only_at_its_own_pool_and_only_its_own_customers(
    gateway: Gateway,
):
    member = await enrol(gateway, "C-1")
    brewbar = await gateway.partner_token("brewbar")
    refused = await bulk(gateway, [line(member, "k", points=5)], token=brewbar)
    assert codes(refused) == ["ACCESS_DENIED"] and refused["results"] == []
    skyway = await gateway.partner_token("skyway")
    stranger = await enrol(gateway, "B-1", partner="brewbar")
    mixed = await bulk(
        gateway, [line(member, "mine", points=5), line(stranger, "theirs", points=5)], token=skyway
    )
    assert mixed["results"][0]["userErrors"] == []
    # Another partner's customer is unknown to this partner's app (nothing said about them).
    assert mixed["results"][1]["transfer"] is None
    assert field(mixed["results"][1]) == [
        ("UNKNOWN_MEMBER", ["input", "lines", "1", "member", "id"])
    ]
    assert await miles(gateway, member) == 5 and await miles(gateway, stranger) == 0


# ---- 3. duplicate keys in one batch ------------------------------------------------------


async def test_a_key_twice_in_a_batch_posts_once_and_a_key_reused_differently_fails(
    gateway: Gateway,
):
    member = await enrol(gateway, "C-1")
    lines = [
        line(member, "same", purchase={"amount": "10.00"}),
        line(member, "other", points=3),
        line(member, "same", purchase={"amount": "10.00"}),
        line(member, "clash", points=40),
        line(member, "clash", points=50),
        line(member, "same", purchase={"amount": "10.00"}),
    ]
    body = await bulk(gateway, lines)
    results = body["results"]
    same = [results[i] for i in (0, 2, 5)]
    assert all(r["userErrors"] == [] for r in same)
    assert len({r["transfer"]["id"] for r in same}) == 1
    assert sorted(r["idempotentReplay"] for r in same) == [False, True, True]
    assert all(r["breakdown"] == same[0]["breakdown"] for r in same)
    clash = [results[3], results[4]]
    posted = [r for r in clash if r["transfer"] is not None]
    refused = [r for r in clash if r["transfer"] is None]
    assert len(posted) == 1 and [codes(r) for r in refused] == [["IDEMPOTENCY_KEY_REUSED"]]
    assert posted[0]["idempotentReplay"] is False
    assert (body["succeeded"], body["failed"]) == (5, 1)
    assert await miles(gateway, member) == 20 + 3 + posted[0]["transfer"]["points"]
    assert await count(gateway, "transfers") == 3


# ---- 4. a resent batch -----------------------------------------------------------------


async def test_a_resent_batch_answers_each_line_as_before_and_posts_only_what_it_could_not(
    gateway: Gateway,
):
    member = await enrol(gateway, "C-1")
    lines = [
        line(member, "r-1", purchase={"amount": "10.00", "lines": [{"amount": "10.00"}]}),
        {"member": {"partnerCustomerId": "LATE"}, "idempotencyKey": "r-2", "points": 30},
        line(member, "r-3", points=5),
        line(member, "r-4", purchase={"amount": "-2"}),
        line(member, "r-5", purchase={"amount": "7.25"}),
    ]
    first = await bulk(gateway, lines)
    assert [codes(r) for r in first["results"]] == [
        [],
        ["UNKNOWN_MEMBER"],
        [],
        ["AMOUNT_NOT_POSITIVE"],
        [],
    ]
    assert await miles(gateway, member) == 20 + 5 + 14
    late = await enrol(gateway, "LATE")  # the cause of line 1's failure is gone

    again = await bulk(gateway, lines)
    assert (again["succeeded"], again["failed"]) == (4, 1)
    for index in (0, 2, 4):
        before, now = first["results"][index], again["results"][index]
        assert now["idempotentReplay"] is True and now["userErrors"] == []
        assert now["transfer"] == before["transfer"] and now["breakdown"] == before["breakdown"]
        assert now["pending"] == before["pending"]
    assert again["results"][3]["userErrors"] == first["results"][3]["userErrors"]
    posted_now = again["results"][1]
    assert posted_now["idempotentReplay"] is False and posted_now["transfer"]["points"] == 30
    assert posted_now["transfer"]["member"]["id"] == late
    assert await miles(gateway, member) == 39 and await miles(gateway, late) == 30

    third = await bulk(gateway, lines)
    assert [r["idempotentReplay"] for r in third["results"]] == [True, True, True, False, True]
    assert third["results"][1]["transfer"] == posted_now["transfer"]
    changed = [*lines[:2], line(member, "r-3", points=6)]  # the same key, another request
    fourth = await bulk(gateway, changed)
    assert [codes(r) for r in fourth["results"]] == [[], [], ["IDEMPOTENCY_KEY_REUSED"]]
    assert await miles(gateway, member) == 39 and await count(gateway, "transfers") == 4


async def test_a_batch_resends_lines_first_earned_one_by_one_and_the_other_way_round(
    gateway: Gateway,
):
    member = await enrol(gateway, "C-1")
    single = {"partner": "skyway", "member": {"id": member}, "idempotencyKey": "one"}
    earned = payload(await gateway.gql(EARN, {"input": {**single, "points": 12}}))
    lines = [line(member, "one", points=12), line(member, "two", points=8)]
    body = await bulk(gateway, lines)
    assert body["results"][0]["idempotentReplay"] is True
    assert body["results"][0]["transfer"] == earned["transfer"]
    again = {**single, "idempotencyKey": "two", "points": 8}
    replay = payload(await gateway.gql(EARN, {"input": again}))
    assert replay["idempotentReplay"] is True
    assert replay["transfer"] == body["results"][1]["transfer"]
    assert await miles(gateway, member) == 20


# ---- 5. racing resends and batches ------------------------------------------------------


async def test_a_batch_racing_resends_of_itself_posts_each_line_once(gateway: Gateway):
    members = [await enrol(gateway, f"C-{i}") for i in range(5)]
    lines = [
        line(
            members[i % 5],
            f"race-{i}",
            **({"points": i + 1} if i % 2 else {"purchase": {"amount": f"{i + 1}.50"}}),
        )
        for i in range(40)
    ]
    lines[7] = line(GHOST, "race-ghost", points=5)
    lines[13] = line(members[3], "race-bad", purchase={"amount": "-1"})
    answers = await asyncio.gather(*(bulk(gateway, lines) for _ in range(3)))
    for answer in answers:
        assert (answer["succeeded"], answer["failed"]) == (38, 2)
        assert codes(answer["results"][7]) == ["UNKNOWN_MEMBER"]
        assert codes(answer["results"][13]) == ["AMOUNT_NOT_POSITIVE"]
    for index in set(range(len(lines))) - {7, 13}:
        seen = [a["results"][index] for a in answers]
        assert all(r["userErrors"] == [] for r in seen), seen
        assert len({r["transfer"]["id"] for r in seen}) == 1
        assert all(r["transfer"] == seen[0]["transfer"] for r in seen)
        assert all(r["breakdown"] == seen[0]["breakdown"] for r in seen)
        assert sorted(r["idempotentReplay"] for r in seen) == [False, True, True], index
    once = await bulk(gateway, lines)
    posted = [r for r in once["results"] if r["transfer"] is not None]
    assert len(posted) == 38 and all(r["idempotentReplay"] for r in posted)
    total = sum(r["transfer"]["points"] for r in posted)
    assert sum([await miles(gateway, m) for m in members]) == total
    assert await count(gateway, "transfers") == 38


async def test_batches_touching_the_same_members_in_opposite_orders_both_post_fully(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="gateway.kernel.unit_of_work")
    members = [await enrol(gateway, f"C-{i}") for i in range(6)]
    forward = [line(members[i % 6], f"f-{i}", points=10 + i) for i in range(36)]
    backward = [line(members[5 - i % 6], f"b-{i}", points=100 + i) for i in range(36)]
    singles: list[dict[str, Any]] = [
        {"partner": "skyway", "member": {"id": members[i % 6]}, "idempotencyKey": f"s-{i}"}
        for i in range(12)
    ]

    async def single(variables: dict[str, Any]) -> dict[str, Any]:
        return payload(await gateway.gql(EARN, {"input": {**variables, "points": 1000}}))

    answers = await asyncio.gather(
        bulk(gateway, forward), bulk(gateway, backward), *(single(v) for v in singles)
    )
    first, second, *rest = answers
    assert (first["succeeded"], second["succeeded"]) == (36, 36)
    assert all(r["userErrors"] == [] and not r["idempotentReplay"] for r in rest)
    expected = Counter[str]()
    for batch in (forward, backward):
        for sent in batch:
            expected[sent["member"]["id"]] += sent["points"]
    for variables in singles:
        expected[variables["member"]["id"]] += 1000
    assert {m: await miles(gateway, m) for m in members} == dict(expected)
    # Not even a deadlock the gateway retried (see unit_of_work): members are locked in
    # one order.
    assert [r.getMessage() for r in caplog.records if "40P01" in r.getMessage()] == []


# ---- 6. points lines next to purchases --------------------------------------------------


async def test_points_lines_and_purchase_lines_mix_in_one_batch(gateway: Gateway):
    member = await enrol(gateway, "C-1")
    other = await enrol(gateway, "C-2")
    lines = [
        line(member, "p-1", points=100, reason="goodwill"),
        line(member, "b-1", purchase={"amount": "20.00"}),
        line(other, "p-2", points=1),
        line(member, "b-2", purchase={"lines": [{"amount": "3.30", "sku": "X"}, {"amount": "4"}]}),
        line(other, "b-3", purchase={"amount": "0.99"}),
    ]
    body = await bulk(gateway, lines)
    results = body["results"]
    assert body["failed"] == 0
    assert [r["breakdown"] for r in results] == [
        [{"rule": "points", "description": "points given", "points": 100}],
        [{"rule": "base", "description": "2 per unit spent", "points": 40}],
        [{"rule": "points", "description": "points given", "points": 1}],
        [{"rule": "base", "description": "2 per unit spent", "points": 14}],
        [{"rule": "base", "description": "2 per unit spent", "points": 1}],
    ]
    transfers = [r["transfer"] for r in results]
    assert [t["kind"] for t in transfers] == ["EARN"] * 5
    assert [t["purchaseAmount"] for t in transfers] == [None, "20", None, "7.3", "0.99"]
    assert transfers[0]["reason"] == "goodwill"
    assert all(r["pending"] is False for r in results)
    assert await miles(gateway, member) == 154 and await miles(gateway, other) == 2
    assert await count(gateway, "purchases") == 3


# ---- 7. a merged member ----------------------------------------------------------------


async def test_a_line_naming_a_merged_member_posts_to_the_survivor(gateway: Gateway):
    survivor = await enrol(gateway, "SURV")
    retired = await enrol(gateway, "OLD", partner="brewbar")
    before = await bulk(gateway, [line(retired, "before", points=9)], partner="brewbar")
    assert before["results"][0]["transfer"]["member"]["id"] == retired
    identity = IdentityService(gateway.service, gateway.clock)
    linked = await identity.link(raw(survivor), Proof("brewbar", "https://idp.test", "s", "OLD"))
    assert linked.merged == (raw(retired),)
    lines = [
        line(retired, "by-id", points=11),
        {"member": {"partnerCustomerId": "OLD"}, "idempotencyKey": "by-customer", "points": 13},
        line(survivor, "direct", purchase={"amount": "5.00"}),
    ]
    body = await bulk(gateway, lines, partner="brewbar")
    assert body["failed"] == 0
    assert [r["transfer"]["member"]["id"] for r in body["results"]] == [survivor] * 3
    assert (await balances(gateway, survivor))["brewbar"] == 9 + 11 + 13 + 5
    resent = await bulk(gateway, [line(retired, "before", points=9)], partner="brewbar")
    assert resent["results"][0]["idempotentReplay"] is True


# ---- 9. events -------------------------------------------------------------------------


async def test_a_batch_appends_one_event_per_new_transfer_and_none_for_replays_or_failures(
    gateway: Gateway,
):
    member = await enrol(gateway, "C-1")
    other = await enrol(gateway, "C-2")
    token = await gateway.partner_token("skyway")
    lines = [
        line(member, "e-1", points=10),
        line(other, "e-2", purchase={"amount": "4.00"}),
        line(member, "e-3", purchase={"amount": "-4.00"}),
        line(GHOST, "e-4", points=3),
        line(member, "e-1", points=10),
        line(other, "e-5", points=2),
    ]
    before = await count(gateway, "outbox")
    body = await bulk(gateway, lines, token=token)
    posted = {
        int(raw(r["transfer"]["id"])): r
        for r in body["results"]
        if r["transfer"] is not None and not r["idempotentReplay"]
    }
    assert len(posted) == 3
    async with gateway.service.engine.connect() as connection:
        found = (
            await connection.execute(
                sa.select(outbox).where(outbox.c.id > before).order_by(outbox.c.id)
            )
        ).all()
    assert sorted(e.transfer_id for e in found) == sorted(posted)
    for event in found:
        result = posted[event.transfer_id]
        assert event.type == "points.earned" and event.partner == "skyway"
        assert event.member_id == raw(result["transfer"]["member"]["id"])
        assert event.points == result["transfer"]["points"]
        assert event.actor == "partner:skyway"
    resent = await bulk(gateway, lines, token=token)
    assert resent["succeeded"] == 4
    assert await count(gateway, "outbox") == before + 3


# ---- 2 (order). lines of one member compose in the batch's order -------------------------


async def test_lines_of_one_member_post_in_the_batch_order(gateway: Gateway):
    first = await enrol(gateway, "C-1")
    second = await enrol(gateway, "C-2")
    totals = {first: 0, second: 0}
    for batch in range(4):
        lines = [line((first, second)[i % 2], f"o-{batch}-{i}", points=1 + i) for i in range(30)]
        lines.insert(3, line(first, f"o-{batch}-0", points=1))  # a replay of line 0
        lines.insert(5, line(first, f"o-{batch}-2", points=99))  # a clash with line 2 (now 3)
        body = await bulk(gateway, lines)
        results = body["results"]
        assert results[3]["idempotentReplay"] is True and results[0]["idempotentReplay"] is False
        assert codes(results[5]) == ["IDEMPOTENCY_KEY_REUSED"]
        for sent, result in zip(lines, results, strict=True):
            if result["transfer"] is None or result["idempotentReplay"]:
                continue
            member = sent["member"]["id"]
            totals[member] += sent["points"]
            assert wallet_after(result) == totals[member], (batch, result["index"])
    assert await miles(gateway, first) == totals[first]
    assert await miles(gateway, second) == totals[second]


LONG = 1050


async def test_a_long_batch_posts_each_line_once_and_keeps_each_members_lines_in_order(
    gateway: Gateway,
):
    """Over a thousand lines (a batch may be posted in rounds): 30 members, 35 lines each,
    interleaved, a few bad lines; each member's lines post in the batch's order (in the
    concurrent groups of a round, each member's lines in one group)."""
    members = [await enrol(gateway, f"L-{i}") for i in range(30)]
    lines: list[dict[str, Any]] = []
    for i in range(LONG):
        member = members[(i * 7) % 30]
        if i % 97 == 5:
            lines.append(line(member, f"long-{i}", points=0))
        elif i % 3 == 0:
            lines.append(line(member, f"long-{i}", purchase={"amount": f"{1 + i % 50}.25"}))
        else:
            lines.append(line(member, f"long-{i}", points=1 + i % 13))
    before = await count(gateway, "outbox")
    body = await bulk(gateway, lines)
    bad = [i for i in range(LONG) if i % 97 == 5]
    assert (body["succeeded"], body["failed"]) == (LONG - len(bad), len(bad))
    totals = dict.fromkeys(members, 0)
    for sent, result in zip(lines, body["results"], strict=True):
        if result["index"] in bad:
            assert codes(result) == ["AMOUNT_NOT_POSITIVE"]
            continue
        assert result["idempotentReplay"] is False
        member = sent["member"]["id"]
        totals[member] += result["transfer"]["points"]
        assert wallet_after(result) == totals[member], result["index"]
    assert {m: await miles(gateway, m) for m in members} == totals
    assert await count(gateway, "outbox") == before + LONG - len(bad)
    again = await bulk(gateway, lines)
    assert again["succeeded"] == LONG - len(bad)
    assert all(r["idempotentReplay"] for r in again["results"] if r["transfer"] is not None)
    assert [r["transfer"] for r in again["results"]] == [r["transfer"] for r in body["results"]]
    assert await count(gateway, "transfers") == LONG - len(bad)
