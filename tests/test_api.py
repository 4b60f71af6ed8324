"""Every operation over HTTP, on SQLite and PostgreSQL: results, user errors, retries."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from gateway.ledger.records import MemberRef
from tests.conftest import Gateway
from tests.operations import (
    CONVERT,
    EARN,
    ENROL,
    MEMBER,
    QUOTE,
    REDEEM,
    REVERSE,
    codes,
    payload,
)


async def enrol(gateway: Gateway, partner: str = "skyway", customer: str = "C-1") -> str:
    result = payload(
        await gateway.gql(ENROL, {"input": {"partner": partner, "partnerCustomerId": customer}})
    )
    assert result["userErrors"] == []
    member_id: str = result["member"]["id"]
    return member_id


async def earn(gateway: Gateway, member: str, points: int, key: str, partner: str = "skyway"):
    return payload(
        await gateway.gql(
            EARN,
            {
                "input": {
                    "partner": partner,
                    "member": {"id": member},
                    "points": points,
                    "idempotencyKey": key,
                }
            },
        )
    )


async def redeem(gateway: Gateway, member: str, points: int, key: str, partner: str = "skyway"):
    return payload(
        await gateway.gql(
            REDEEM,
            {
                "input": {
                    "partner": partner,
                    "member": {"id": member},
                    "points": points,
                    "idempotencyKey": key,
                }
            },
        )
    )


async def convert(
    gateway: Gateway,
    member: str,
    points: int,
    key: str,
    source: str = "skyway",
    target: str = "brewbar",
) -> dict[str, Any]:
    return payload(
        await gateway.gql(
            CONVERT,
            {
                "input": {
                    "memberId": member,
                    "fromPartner": source,
                    "toPartner": target,
                    "points": points,
                    "idempotencyKey": key,
                }
            },
        )
    )


async def reverse(gateway: Gateway, transfer: str, key: str, points: int | None = None):
    variables: dict[str, Any] = {"transferId": transfer, "idempotencyKey": key}
    if points is not None:
        variables["points"] = points
    return payload(await gateway.gql(REVERSE, {"input": variables}))


async def balances(gateway: Gateway, member: str) -> dict[str, int]:
    body = await gateway.gql(MEMBER, {"id": member})
    return {w["partner"]["slug"]: w["balance"] for w in body["data"]["member"]["wallets"]}


async def test_partners_show_currency_value_earn_rate_and_rules_in_force(gateway: Gateway):
    body = await gateway.gql(
        """{ partners { slug name currency { code name } pointValue { amount currency }
             earnRate { pointsPerUnit purchaseCurrency rounding }
             conversionRules {
               toPartner { slug } rate feePercent feeFixed minPoints maxPoints } } }"""
    )
    partners = {p["slug"]: p for p in body["data"]["partners"]}
    assert set(partners) == {"skyway", "brewbar", "freshmart", "harbour"}
    assert partners["skyway"]["currency"] == {"code": "SKM", "name": "miles"}
    assert partners["skyway"]["pointValue"] == {"amount": "0.012", "currency": "EUR"}
    assert partners["brewbar"]["pointValue"]["amount"] == "0.04"
    assert partners["freshmart"]["pointValue"]["amount"] == "0.005"
    assert partners["skyway"]["earnRate"] == {
        "pointsPerUnit": "2",
        "purchaseCurrency": "EUR",
        "rounding": "DOWN",
    }
    rules = {r["toPartner"]["slug"]: r for r in partners["skyway"]["conversionRules"]}
    assert set(rules) == {"brewbar", "freshmart"}
    assert rules["brewbar"]["rate"] == "0.25"  # the 0.27 rule starts in 2027


async def test_enrol_is_idempotent_on_the_pair_and_resolves_by_customer_id(gateway: Gateway):
    first = payload(
        await gateway.gql(ENROL, {"input": {"partner": "skyway", "partnerCustomerId": "A1"}})
    )
    again = payload(
        await gateway.gql(ENROL, {"input": {"partner": "skyway", "partnerCustomerId": "A1"}})
    )
    other = payload(
        await gateway.gql(ENROL, {"input": {"partner": "brewbar", "partnerCustomerId": "A1"}})
    )
    assert first["created"] is True and again["created"] is False
    assert first["member"]["id"] == again["member"]["id"] != other["member"]["id"]
    body = await gateway.gql(
        '{ memberByEnrolment(partner: "skyway", partnerCustomerId: "A1") '
        "{ id enrolments { partner { slug } partnerCustomerId } } }"
    )
    member = body["data"]["memberByEnrolment"]
    assert member["id"] == first["member"]["id"]
    assert member["enrolments"] == [{"partner": {"slug": "skyway"}, "partnerCustomerId": "A1"}]


async def test_enrol_refuses_unknown_partner_and_blank_customer(gateway: Gateway):
    unknown = payload(
        await gateway.gql(ENROL, {"input": {"partner": "nope", "partnerCustomerId": "A"}})
    )
    blank = payload(
        await gateway.gql(ENROL, {"input": {"partner": "skyway", "partnerCustomerId": " "}})
    )
    control = payload(
        await gateway.gql(ENROL, {"input": {"partner": "skyway", "partnerCustomerId": "a\x1fb"}})
    )
    nul = await gateway.gql(
        ENROL,
        {"input": {"partner": "skyway", "partnerCustomerId": "a\x00b"}},
        status=400,
        errors=True,
    )  # refused at the edge, before anything runs
    assert [e["extensions"]["code"] for e in nul["errors"]] == ["BAD_USER_INPUT"]
    assert codes(unknown) == ["UNKNOWN_PARTNER"] and unknown["userErrors"][0]["field"] == [
        "input",
        "partner",
    ]
    assert codes(blank) == ["INVALID_INPUT"]
    assert codes(control) == ["INVALID_INPUT"]
    assert unknown["member"] is None


async def test_control_characters_in_a_customer_id_are_invalid_input_not_a_crash(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
):
    """A control character in a member reference or a lookup is refused before any query:
    INVALID_INPUT in a mutation, null in memberByEnrolment, never "Unexpected error.". A NUL
    (which PostgreSQL text cannot hold) is refused at the edge: BAD_USER_INPUT, nothing runs."""
    member = await enrol(gateway, customer="A")
    await earn(gateway, member, 100, "E-0")
    resolved: list[MemberRef] = []
    resolve_member = gateway.service.resolve_member

    async def spy(ref: MemberRef) -> str:
        resolved.append(ref)
        return await resolve_member(ref)

    monkeypatch.setattr(gateway.service, "resolve_member", spy)
    skyway = await gateway.partner_token("skyway")
    bad_ids = ["A\x1f", "\x7f", "A" * 129, " "]
    for token in (None, skyway):
        for index, customer in enumerate(bad_ids):
            for operation, name in ((EARN, "earnPoints"), (REDEEM, "redeemPoints")):
                variables = {
                    "partner": "skyway",
                    "member": {"partnerCustomerId": customer},
                    "points": 5,
                    "idempotencyKey": f"bad-{name}-{index}",
                }
                body = await gateway.gql(operation, {"input": variables}, token)
                result = body["data"][name]
                assert codes(result) == ["INVALID_INPUT"], (name, customer, body)
                assert result["userErrors"][0]["field"] == [
                    "input",
                    "member",
                    "partnerCustomerId",
                ]
                assert result["transfer"] is None
    for customer in ("A\u0000", "\u0000"):
        variables = {"partner": "skyway", "member": {"partnerCustomerId": customer}}
        body = await gateway.gql(
            EARN,
            {"input": {**variables, "points": 5, "idempotencyKey": "nul"}},
            status=400,
            errors=True,
        )
        assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]
    # The partner a customer id is looked up at, too (an operator names any partner).
    variables = {
        "partner": "sky\x01",
        "member": {"partnerCustomerId": "A"},
        "points": 5,
        "idempotencyKey": "bad-partner",
    }
    for operation in (EARN, REDEEM):
        result = payload(await gateway.gql(operation, {"input": variables}))
        assert codes(result) in (["INVALID_INPUT"], ["UNKNOWN_PARTNER"]), result

    lookup = """query($partner: String!, $customer: String!) {
      memberByEnrolment(partner: $partner, partnerCustomerId: $customer) { id } }"""
    for token in (None, skyway):
        for partner, customer in [("skyway", c) for c in bad_ids] + [("sky\x01", "A")]:
            body = await gateway.gql(lookup, {"partner": partner, "customer": customer}, token)
            assert body["data"] == {"memberByEnrolment": None}, (partner, customer, body)
        found = await gateway.gql(lookup, {"partner": "skyway", "customer": "A"}, token)
        assert found["data"]["memberByEnrolment"]["id"] == member
    assert all(ref.customer_id == "A" and ref.partner == "skyway" for ref in resolved), resolved
    assert await balances(gateway, member) == {"brewbar": 0, "freshmart": 0, "skyway": 100}


async def test_earn_points_shows_transfer_legs_and_wallet(gateway: Gateway):
    member = await enrol(gateway)
    result = await earn(gateway, member, 500, "R-1")
    assert result["userErrors"] == [] and result["idempotentReplay"] is False
    transfer = result["transfer"]
    assert transfer["kind"] == "EARN" and transfer["points"] == 500
    assert sorted((leg["account"], leg["amount"]) for leg in transfer["legs"]) == [
        ("ISSUANCE", -500),
        ("WALLET", 500),
    ]
    assert result["wallet"] == {
        "balance": 500,
        "partner": {"slug": "skyway"},
        "value": {"amount": "6.00", "currency": "EUR"},
    }


async def test_earn_for_a_purchase_uses_the_earn_rate_and_rounding(gateway: Gateway):
    member = await enrol(gateway, "brewbar")
    result = payload(
        await gateway.gql(
            EARN,
            {
                "input": {
                    "partner": "brewbar",
                    "member": {"partnerCustomerId": "C-1"},
                    "purchaseAmount": "4.50",
                    "idempotencyKey": "till-7",
                    "reason": "Latte",
                }
            },
        )
    )
    assert result["userErrors"] == []
    assert result["transfer"]["points"] == 5  # 4.50 stars, rounded half up
    assert result["transfer"]["purchaseAmount"] == "4.5"
    assert result["transfer"]["reason"] == "Latte"
    assert (await balances(gateway, member))["brewbar"] == 5


async def test_earn_user_errors_change_nothing(gateway: Gateway):
    member = await enrol(gateway)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"points": 0}, "AMOUNT_NOT_POSITIVE"),
        ({"points": -5}, "AMOUNT_NOT_POSITIVE"),
        ({"points": 2_000_000_000}, "AMOUNT_OUT_OF_BOUNDS"),
        ({"points": 5, "purchaseAmount": "3"}, "INVALID_INPUT"),
        ({}, "INVALID_INPUT"),
        ({"purchaseAmount": "0.10"}, "AMOUNT_TOO_SMALL"),
        ({"purchaseAmount": "-3"}, "AMOUNT_NOT_POSITIVE"),
        ({"purchaseAmount": "1.123456"}, "INVALID_INPUT"),
        ({"points": 5, "partner": "nope"}, "UNKNOWN_PARTNER"),
        ({"points": 5, "member": {"id": "TWVtYmVyOm5vYm9keQ=="}}, "UNKNOWN_MEMBER"),
        ({"points": 5, "member": {"id": "garbage"}}, "UNKNOWN_MEMBER"),
        ({"points": 5, "member": {"id": "TWVtYmVyOgA="}}, "UNKNOWN_MEMBER"),  # "Member:\x00"
        ({"points": 5, "member": {"partnerCustomerId": "nobody"}}, "UNKNOWN_MEMBER"),
        ({"points": 5, "idempotencyKey": ""}, "INVALID_INPUT"),
        ({"points": 5, "idempotencyKey": "k" * 256}, "INVALID_INPUT"),
        ({"points": 5, "reason": "r" * 501}, "INVALID_INPUT"),
    ]
    for index, (override, code) in enumerate(cases):
        variables = {
            "partner": "skyway",
            "member": {"id": member},
            "idempotencyKey": f"E-{index}",
            **override,
        }
        result = payload(await gateway.gql(EARN, {"input": variables}))
        assert codes(result) == [code], (override, result)
        assert result["transfer"] is None
    assert await balances(gateway, member) == {"brewbar": 0, "freshmart": 0, "skyway": 0}


async def test_a_float_purchase_amount_is_refused_with_a_clear_error(gateway: Gateway):
    member = await enrol(gateway)
    body = await gateway.gql(
        EARN,
        {
            "input": {
                "partner": "skyway",
                "member": {"id": member},
                "purchaseAmount": 12.5,
                "idempotencyKey": "F",
            }
        },
        status=400,
        errors=True,
    )
    assert "data" not in body
    assert "Decimal values are strings" in body["errors"][0]["message"]


async def test_retry_with_same_key_returns_first_answer_and_posts_once(gateway: Gateway):
    member = await enrol(gateway)
    first = await earn(gateway, member, 300, "receipt-9")
    second = await earn(gateway, member, 300, "receipt-9")
    assert second["idempotentReplay"] is True
    assert second["transfer"] == first["transfer"]
    assert second["wallet"]["balance"] == first["wallet"]["balance"] == 300
    assert (await balances(gateway, member))["skyway"] == 300


async def test_same_key_with_different_input_is_refused(gateway: Gateway):
    member = await enrol(gateway)
    await earn(gateway, member, 300, "receipt-9")
    different = await earn(gateway, member, 301, "receipt-9")
    assert codes(different) == ["IDEMPOTENCY_KEY_REUSED"]
    assert different["userErrors"][0]["field"] == ["input", "idempotencyKey"]
    # Keys are per partner and operation: the same receipt number elsewhere is fine.
    assert (await earn(gateway, member, 301, "receipt-9", partner="brewbar"))["userErrors"] == []
    assert (await redeem(gateway, member, 100, "receipt-9"))["userErrors"] == []
    assert await balances(gateway, member) == {"brewbar": 301, "freshmart": 0, "skyway": 200}


async def test_redeem_spends_and_refuses_overdraft(gateway: Gateway):
    member = await enrol(gateway)
    await earn(gateway, member, 100, "E1")
    spent = await redeem(gateway, member, 60, "R1")
    assert spent["userErrors"] == [] and spent["wallet"]["balance"] == 40
    assert sorted((leg["account"], leg["amount"]) for leg in spent["transfer"]["legs"]) == [
        ("REDEMPTION", 60),
        ("WALLET", -60),
    ]
    too_much = await redeem(gateway, member, 41, "R2")
    assert codes(too_much) == ["INSUFFICIENT_POINTS"]
    assert "holds 40" in too_much["userErrors"][0]["message"]
    # The failed call posted nothing, so its key is free for a corrected retry.
    assert (await redeem(gateway, member, 40, "R2"))["wallet"]["balance"] == 0
    never = await redeem(gateway, member, 1, "R3", partner="brewbar")
    assert codes(never) == ["INSUFFICIENT_POINTS"]


async def test_quote_then_convert_gives_exactly_the_quote(gateway: Gateway):
    member = await enrol(gateway)
    await earn(gateway, member, 5000, "E1")
    quote = payload(
        await gateway.gql(
            QUOTE,
            {
                "input": {
                    "memberId": member,
                    "fromPartner": "skyway",
                    "toPartner": "brewbar",
                    "points": 1000,
                }
            },
        )
    )
    assert quote["userErrors"] == []
    q = quote["quote"]
    assert (q["points"], q["fee"], q["rate"], q["receivedPoints"]) == (1000, 20, "0.25", 245)
    assert q["valueGiven"] == {"amount": "12.00", "currency": "EUR"}
    assert q["valueReceived"] == {"amount": "9.80", "currency": "EUR"}
    assert q["sourceBalance"] == 5000 and q["sufficientBalance"] is True
    assert await balances(gateway, member) == {"brewbar": 0, "freshmart": 0, "skyway": 5000}

    result = await convert(gateway, member, 1000, "C1")
    assert result["userErrors"] == []
    transfer = result["transfer"]
    assert (transfer["kind"], transfer["points"], transfer["receivedPoints"]) == (
        "CONVERSION",
        1000,
        245,
    )
    assert (transfer["rate"], transfer["fee"]) == ("0.25", 20)
    assert sorted(
        (leg["partner"]["slug"], leg["account"], leg["amount"]) for leg in transfer["legs"]
    ) == [
        ("brewbar", "LIQUIDITY", -245),
        ("brewbar", "WALLET", 245),
        ("skyway", "FEES", 20),
        ("skyway", "LIQUIDITY", 980),
        ("skyway", "WALLET", -1000),
    ]
    assert result["fromWallet"]["balance"] == 4000 and result["toWallet"]["balance"] == 245
    assert await balances(gateway, member) == {"brewbar": 245, "freshmart": 0, "skyway": 4000}


async def test_conversion_keeps_its_rate_when_the_rate_changes(gateway: Gateway):
    member = await enrol(gateway)
    await earn(gateway, member, 5000, "E1")
    before = await convert(gateway, member, 1000, "C1")
    gateway.clock.now = gateway.clock.now.replace(year=2027)
    after = await convert(gateway, member, 1000, "C2")
    assert before["transfer"]["rate"] == "0.25" and after["transfer"]["rate"] == "0.27"
    assert after["transfer"]["receivedPoints"] == 264  # floor(980 * 0.27)
    replay = await convert(gateway, member, 1000, "C1")
    assert replay["idempotentReplay"] is True and replay["transfer"]["rate"] == "0.25"


async def test_conversion_user_errors(gateway: Gateway):
    member = await enrol(gateway)
    await earn(gateway, member, 100, "E1")
    cases = [
        ({"toPartner": "skyway"}, "SAME_PARTNER"),
        ({"fromPartner": "freshmart", "toPartner": "skyway"}, "NO_CONVERSION_RULE"),
        ({"fromPartner": "nope"}, "UNKNOWN_PARTNER"),
        ({"points": 0}, "AMOUNT_NOT_POSITIVE"),
        ({"points": 99}, "AMOUNT_OUT_OF_BOUNDS"),
        ({"points": 300_000}, "AMOUNT_OUT_OF_BOUNDS"),
        ({"points": 200}, "INSUFFICIENT_POINTS"),
        ({"memberId": "TWVtYmVyOng="}, "UNKNOWN_MEMBER"),
    ]
    for index, (override, code) in enumerate(cases):
        variables = {
            "memberId": member,
            "fromPartner": "skyway",
            "toPartner": "brewbar",
            "points": 100,
            "idempotencyKey": f"C-{index}",
            **override,
        }
        result = payload(await gateway.gql(CONVERT, {"input": variables}))
        assert codes(result) == [code], (override, result)
        quote = payload(
            await gateway.gql(
                QUOTE, {"input": {k: v for k, v in variables.items() if k != "idempotencyKey"}}
            )
        )
        if code != "INSUFFICIENT_POINTS":
            assert codes(quote) == [code]
        else:
            assert quote["quote"]["sufficientBalance"] is False
    assert await balances(gateway, member) == {"brewbar": 0, "freshmart": 0, "skyway": 100}


async def test_reverse_in_full_and_only_once(gateway: Gateway):
    member = await enrol(gateway)
    earned = await earn(gateway, member, 500, "E1")
    transfer_id = earned["transfer"]["id"]
    result = await reverse(gateway, transfer_id, "V1")
    assert result["userErrors"] == []
    reversal = result["reversal"]
    assert reversal["kind"] == "REVERSAL" and reversal["points"] == 500
    assert reversal["reverses"] == {"id": transfer_id}
    assert (await balances(gateway, member))["skyway"] == 0
    again = await reverse(gateway, transfer_id, "V2")
    assert codes(again) == ["TRANSFER_ALREADY_REVERSED"]
    replay = await reverse(gateway, transfer_id, "V1")
    assert replay["idempotentReplay"] is True and replay["reversal"]["id"] == reversal["id"]
    of_reversal = await reverse(gateway, reversal["id"], "V3")
    assert codes(of_reversal) == ["NOT_REVERSIBLE"]
    body = await gateway.gql(
        "query($id: ID!) { node(id: $id) { ... on Transfer { reversedBy { id } } } }",
        {"id": transfer_id},
    )
    assert body["data"]["node"]["reversedBy"] == {"id": reversal["id"]}


async def test_partial_reversal_and_never_below_zero(gateway: Gateway):
    member = await enrol(gateway)
    earned = await earn(gateway, member, 500, "E1")
    await redeem(gateway, member, 450, "R1")
    too_much = await reverse(gateway, earned["transfer"]["id"], "V1")
    assert codes(too_much) == ["INSUFFICIENT_POINTS"]
    above = await reverse(gateway, earned["transfer"]["id"], "V2", points=501)
    assert codes(above) == ["AMOUNT_OUT_OF_BOUNDS"]
    part = await reverse(gateway, earned["transfer"]["id"], "V3", points=50)
    assert part["userErrors"] == [] and part["reversal"]["points"] == 50
    assert (await balances(gateway, member))["skyway"] == 0
    # The other 450 can still be reversed, but not below zero.
    assert codes(await reverse(gateway, earned["transfer"]["id"], "V4", points=1)) == [
        "INSUFFICIENT_POINTS"
    ]


async def test_reversing_a_redeem_and_a_conversion(gateway: Gateway):
    member = await enrol(gateway)
    await earn(gateway, member, 2000, "E1")
    spent = await redeem(gateway, member, 300, "R1")
    assert (await reverse(gateway, spent["transfer"]["id"], "V1", points=100))["userErrors"] == []
    converted = await convert(gateway, member, 1000, "C1")
    partial = await reverse(gateway, converted["transfer"]["id"], "V2", points=10)
    assert partial["userErrors"] == [] and partial["reversal"]["points"] == 10
    full = await reverse(gateway, converted["transfer"]["id"], "V3")
    assert full["userErrors"] == []
    assert await balances(gateway, member) == {"brewbar": 0, "freshmart": 0, "skyway": 1800}


async def test_reverse_unknown_transfer(gateway: Gateway):
    for transfer_id in ("VHJhbnNmZXI6OTk5", "nonsense", "TWVtYmVyOjE="):
        assert codes(await reverse(gateway, transfer_id, "V")) == ["UNKNOWN_TRANSFER"]


async def test_member_history_pages_newest_first_and_filters_by_pool(gateway: Gateway):
    member = await enrol(gateway)
    for index in range(7):
        await earn(gateway, member, 1000, f"E{index}")
    await convert(gateway, member, 1000, "C1")
    await earn(gateway, member, 10, "B1", partner="freshmart")

    seen: list[str] = []
    after = None
    while True:
        body = await gateway.gql(MEMBER, {"id": member, "first": 3, "after": after})
        connection = body["data"]["member"]["transfers"]
        seen += [edge["node"]["kind"] for edge in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert seen == ["EARN", "CONVERSION"] + ["EARN"] * 7

    body = await gateway.gql(MEMBER, {"id": member, "partner": "brewbar"})
    edges = body["data"]["member"]["transfers"]["edges"]
    assert [e["node"]["kind"] for e in edges] == ["CONVERSION"]
    member_data = body["data"]["member"]
    # 6000 * 0.012 + 245 * 0.04 + 10 * 0.005
    assert member_data["totalValue"] == {"amount": "81.85", "currency": "EUR"}


async def test_bad_page_arguments_are_clear_errors(gateway: Gateway):
    member = await enrol(gateway)
    body = await gateway.gql(MEMBER, {"id": member, "first": 1000}, errors=True)
    assert "between 0 and 100" in body["errors"][0]["message"]
    body = await gateway.gql(MEMBER, {"id": member, "after": "bogus"}, errors=True)
    assert "not a cursor" in body["errors"][0]["message"]
    body = await gateway.gql(MEMBER, {"id": member, "partner": "x" * 5000}, errors=True)
    assert body["errors"][0]["message"] == f"No partner {'x' * 40 + '…'!r}."


async def test_node_finds_members_partners_and_transfers(gateway: Gateway):
    member = await enrol(gateway)
    earned = await earn(gateway, member, 5, "E1")
    partner_id = base64.b64encode(b"Partner:brewbar").decode()
    for node_id, typename in (
        (member, "Member"),
        (partner_id, "Partner"),
        (earned["transfer"]["id"], "Transfer"),
    ):
        body = await gateway.gql(
            "query($id: ID!) { node(id: $id) { id __typename } }", {"id": node_id}
        )
        assert body["data"]["node"] == {"id": node_id, "__typename": typename}
    for missing in ("bm9wZQ==", "TWVtYmVyOm5vcGU=", "", "Tm9kZTox"):
        body = await gateway.gql("query($id: ID!) { node(id: $id) { id } }", {"id": missing})
        assert body["data"]["node"] is None
    assert (await gateway.gql('{ member(id: "xyz") { id } }'))["data"]["member"] is None


async def test_nested_fields_are_batched_not_one_query_per_row(gateway: Gateway):
    from sqlalchemy import event

    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    query = """query($id: ID!, $first: Int) { member(id: $id) {
      wallets { balance } totalValue { amount }
      transfers(first: $first) { edges { node {
        id legs { amount partner { slug } } member { id } reverses { id } reversedBy { id }
      } } } } }"""
    member = await enrol(gateway)
    for index in range(30):
        await earn(gateway, member, 10, f"E{index}")
    engine = gateway.service.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        await gateway.gql(query, {"id": member, "first": 3})
        few = len(statements)
        statements.clear()
        body = await gateway.gql(query, {"id": member, "first": 30})
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(body["data"]["member"]["transfers"]["edges"]) == 30
    # Wallets read holds, pending points and debts: one batched statement each.
    assert len(statements) == few <= 10, statements
