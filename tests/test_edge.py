"""The GraphQL edge over HTTP: 64-bit points, DateTime bounds, hostile text, coded errors,
field paths in userErrors, and mutations that survive another field's failure."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.settlement.service import SettlementService
from tests.conftest import Gateway
from tests.operations import EARN, ERRORS, codes, payload
from tests.test_api import earn, enrol

BILLION = 1_000_000_000
INT64_MAX = 2**63 - 1

LEDGER = """
query($id: ID!) {
  member(id: $id) {
    wallets { partner { slug } balance available held pending owed }
    transfers(first: 10) { edges { node { points legs { account amount balanceAfter } } } }
  }
  partners { slug figures { pointsIssued pointsOutstanding membersHoldingPoints } }
}"""


async def post(gateway: Gateway, query: str, variables: dict[str, Any] | None = None):
    """The status and body of a request as an operator, whatever they are."""
    response = await gateway.client.post(
        "/graphql",
        content=json.dumps({"query": query, "variables": variables or {}}),  # \ud800 escaped
        headers={
            "content-type": "application/json",
            "accept": "application/graphql-response+json",
            "authorization": f"Bearer {await gateway.operator_token()}",
        },
    )
    return response.status_code, response.json()


def error_codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body["errors"]]


# 1: points past 32 bits ----------------------------------------------------------------


async def test_balances_past_32_bits_are_read_everywhere(gateway: Gateway):
    member = await enrol(gateway)
    for index in range(3):
        result = await earn(gateway, member, BILLION, f"big-{index}")
        assert result["userErrors"] == [] and result["transfer"]["points"] == BILLION
    assert result["wallet"]["balance"] == 3 * BILLION
    body = (await gateway.gql(LEDGER, {"id": member}))["data"]
    (wallet,) = [w for w in body["member"]["wallets"] if w["partner"]["slug"] == "skyway"]
    assert wallet == {
        "partner": {"slug": "skyway"},
        "balance": 3 * BILLION,
        "available": 3 * BILLION,
        "held": 0,
        "pending": 0,
        "owed": 0,
    }
    history = [edge["node"] for edge in body["member"]["transfers"]["edges"]]
    assert [t["points"] for t in history] == [BILLION] * 3
    after = sorted(
        leg["balanceAfter"] for t in history for leg in t["legs"] if leg["account"] == "WALLET"
    )
    assert after == [BILLION, 2 * BILLION, 3 * BILLION]
    figures = {p["slug"]: p["figures"] for p in body["partners"]}["skyway"]
    assert figures["pointsIssued"] == figures["pointsOutstanding"] == 3 * BILLION


async def test_int64_inputs_take_numbers_or_digit_strings_and_refuse_the_rest(gateway: Gateway):
    member = await enrol(gateway)
    as_text = await earn(gateway, member, "250", "text")  # type: ignore[arg-type]
    assert as_text["userErrors"] == [] and as_text["transfer"]["points"] == 250
    too_many = await earn(gateway, member, INT64_MAX, "huge")
    assert codes(too_many) == ["AMOUNT_OUT_OF_BOUNDS"]
    assert too_many["userErrors"][0]["field"] == ["input", "points"]
    for bad in (2**63, -(2**63) - 1, 1.5, "1.5", "12a", True, "99999999999999999999"):
        status, body = await post(
            gateway,
            EARN,
            {
                "input": {
                    "partner": "skyway",
                    "member": {"id": member},
                    "points": bad,
                    "idempotencyKey": "bad",
                }
            },
        )
        assert status == 400 and error_codes(body) == ["BAD_USER_INPUT"], (bad, body)
        assert "points" in body["errors"][0]["message"]
    literal = """mutation { earnPoints(input: {partner: "skyway", member: {partnerCustomerId:
      "C-1"}, idempotencyKey: "lit", points: 9223372036854775808}) { userErrors { code } } }"""
    status, body = await post(gateway, literal)
    assert status == 400 and error_codes(body) == ["BAD_USER_INPUT"], body


# 5: DateTime inputs ----------------------------------------------------------------------

OUT_OF_CALENDAR = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00")


@pytest.mark.parametrize("moment", [*OUT_OF_CALENDAR, "9000-01-01T00:00:00Z", "soon", "2026"])
async def test_datetimes_outside_the_calendar_are_refused_naming_the_field(
    gateway: Gateway, moment: str
):
    create_promotion = f"""
    mutation($input: CreatePromotionInput!) {{
      createPromotion(input: $input) {{ promotion {{ id }} {ERRORS} }}
    }}"""
    promotion = {
        "name": "Flash",
        "startsAt": "2026-06-01T00:00:00Z",
        "endsAt": moment,
        "bonus": 40,
    }
    create_reward = f"""
    mutation($input: CreateRewardInput!) {{
      createReward(input: $input) {{ reward {{ id }} {ERRORS} }}
    }}"""
    reward = {"kind": "DISCOUNT", "name": "Off", "pricePoints": 100, "value": "4.00"}
    cases = [
        (
            "mutation($end: DateTime!) { closeSettlementPeriod(input: {periodEnd: $end}) "
            "{ userErrors { code } } }",
            {"end": moment},
            "$end",
        ),
        (create_promotion, {"input": {"partner": "skyway", "promotion": promotion}}, "endsAt"),
        (
            create_reward,
            {"input": {"partner": "skyway", "reward": {**reward, "validUntil": moment}}},
            "validUntil",
        ),
        (
            'query($since: DateTime) { breakage(partner: "skyway", since: $since) { points } }',
            {"since": moment},
            "$since",
        ),
    ]
    for query, variables, field in cases:
        status, body = await post(gateway, query, variables)
        assert status == 400, body
        assert error_codes(body) == ["BAD_USER_INPUT"], body
        assert field in body["errors"][0]["message"], body
        assert "Unexpected" not in body["errors"][0]["message"]
    literal = (
        f'mutation {{ closeSettlementPeriod(input: {{periodEnd: "{moment}"}}) '
        "{ userErrors { code } } }"
    )
    status, body = await post(gateway, literal)
    assert status == 400 and error_codes(body) == ["BAD_USER_INPUT"], body
    assert "periodEnd" in body["errors"][0]["message"], body


async def test_a_datetime_needs_an_offset_and_late_accepted_moments_do_not_overflow(
    gateway: Gateway,
):
    status, body = await post(
        gateway,
        'query($since: DateTime) { breakage(partner: "skyway", since: $since) { points } }',
        {"since": "2029-07-01T00:00:00"},
    )
    assert status == 400 and error_codes(body) == ["BAD_USER_INPUT"]
    assert "UTC offset" in body["errors"][0]["message"]
    late = "8999-12-31T09:59:59-14:00"  # accepted: the last second of the range, in UTC
    query = f"""
    mutation($input: CreatePromotionInput!) {{
      createPromotion(input: $input) {{ promotion {{ id endsAt }} {ERRORS} }}
    }}"""
    promotion = {"name": "Long", "startsAt": "2026-06-01T00:00:00Z", "endsAt": late, "bonus": 5}
    created = payload(
        await gateway.gql(query, {"input": {"partner": "skyway", "promotion": promotion}})
    )
    assert created["userErrors"] == [], created
    assert created["promotion"]["endsAt"].startswith("8999-12-31T23:59:59")
    member = await enrol(gateway)
    assert (await earn(gateway, member, 10, "during"))["userErrors"] == []
    body = await gateway.gql(
        'query($since: DateTime) { breakage(partner: "skyway", since: $since) { points } }',
        {"since": late},
    )
    assert body["data"]["breakage"]["points"] == 0
    listed = await gateway.gql('{ promotions(partner: "skyway") { name endsAt } }')
    assert "Long" in [p["name"] for p in listed["data"]["promotions"]]


# 17: hostile text ------------------------------------------------------------------------

HOSTILE = ("bad\u0000text", "bad\ud800text")


@pytest.mark.parametrize("text", HOSTILE)
async def test_nul_and_lone_surrogates_are_refused_in_every_string(gateway: Gateway, text: str):
    member = await enrol(gateway)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("query($p: String) { rewards(partner: $p) { name } }", {"p": text}),
        ("query($p: String) { challenges(partner: $p) { slug } }", {"p": text}),
        ("query($p: String) { promotions(partner: $p) { name } }", {"p": text}),
        (
            'query($p: String!) { settlementStatement(periodId: "1", partner: $p) { partner } }',
            {"p": text},
        ),
        (
            f"""mutation($input: ReturnPurchaseInput!) {{
              returnPurchase(input: $input) {{ clawedBack {ERRORS} }} }}""",
            {
                "input": {
                    "partner": "skyway",
                    "receipt": text,
                    "amount": "1.00",
                    "idempotencyKey": "r",
                }
            },
        ),
        (
            EARN,
            {
                "input": {
                    "partner": "skyway",
                    "member": {"id": member},
                    "points": 5,
                    "idempotencyKey": text,
                }
            },
        ),
        ("query($id: ID!) { member(id: $id) { id } }", {"id": text}),
    ]
    for query, variables in cases:
        status, body = await post(gateway, query, variables)
        assert status == 400, (query, body)
        assert error_codes(body) == ["BAD_USER_INPUT"], (query, body)
    escaped = text.encode("unicode_escape", "surrogatepass").decode()
    status, body = await post(gateway, f'{{ promotions(partner: "{escaped}") {{ name }} }}')
    assert status == 400 and "Unexpected" not in str(body), body
    assert error_codes(body)[0] in ("BAD_USER_INPUT", "GRAPHQL_PARSE_FAILED"), body
    wallets = "query($id: ID!) { member(id: $id) { wallets { balance } } }"
    found = (await gateway.gql(wallets, {"id": member}))["data"]["member"]["wallets"]
    assert {wallet["balance"] for wallet in found} == {0}


@pytest.mark.parametrize("path", ["%00", "%ED%A0%80", "sky%00way"])
async def test_hostile_text_in_paths_and_queries_outside_graphql_is_refused(
    gateway: Gateway, path: str
):
    token = await gateway.operator_token()
    csv = await gateway.client.get(
        f"/settlement/1/{path}.csv", headers={"authorization": f"Bearer {token}"}
    )
    assert csv.status_code in (400, 404), csv.text
    for url in (f"/auth/login/{path}", f"/auth/callback/skyway?state={path}&code={path}"):
        response = await gateway.client.get(url)
        assert response.status_code in (400, 404), (url, response.text)
    token_response = await gateway.client.post(
        "/oauth/token",
        content=f"grant_type=client_credentials&client_id={path}&client_secret=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert token_response.status_code in (400, 401), token_response.text


# 6: extensions.code on every error -------------------------------------------------------


async def test_every_error_carries_a_code(gateway: Gateway):
    cases = [
        ("{ partners { slug ", "GRAPHQL_PARSE_FAILED"),
        ("{ nothingHere }", "GRAPHQL_VALIDATION_FAILED"),
        ('{ breakage(partner: "skyway", since: "yesterday") { points } }', "BAD_USER_INPUT"),
    ]
    for query, code in cases:
        status, body = await post(gateway, query)
        assert "errors" in body, body
        found = error_codes(body)
        assert all(found), body
        if code is not None:
            assert found == [code], body
    status, body = await post(
        gateway, "query($first: Int!) { settlementPeriods(first: $first) { id } }", {"first": "x"}
    )
    assert status == 400 and error_codes(body) == ["BAD_USER_INPUT"], body


# 18: one failing mutation field leaves the others' answers -------------------------------


async def test_mutation_fields_are_nullable(gateway: Gateway):
    query = '{ __type(name: "Mutation") { fields { name type { kind } } } }'
    fields = (await gateway.gql(query))["data"]["__type"]["fields"]
    assert [f["name"] for f in fields if f["type"]["kind"] == "NON_NULL"] == []


async def test_a_failing_mutation_field_does_not_wipe_out_a_committed_answer(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
):
    member = await enrol(gateway)

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the settlement service broke")

    monkeypatch.setattr(SettlementService, "close", broken)
    query = f"""
    mutation($member: ID!) {{
      a: earnPoints(input: {{partner: "skyway", member: {{id: $member}}, points: 70,
                             idempotencyKey: "both"}}) {{ wallet {{ balance }} {ERRORS} }}
      b: closeSettlementPeriod(input: {{periodEnd: "2026-05-01T00:00:00Z"}}) {{ {ERRORS} }}
    }}"""
    status, body = await post(gateway, query, {"member": member})
    assert status == 200, body
    assert body["data"]["a"] == {"wallet": {"balance": 70}, "userErrors": []}
    assert body["data"]["b"] is None
    (error,) = body["errors"]
    assert error["path"] == ["b"] and error["message"] == "Unexpected error."
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"


# 6: field paths in userErrors ------------------------------------------------------------


def input_path_exists(operation: str, path: list[str], mutation: bool = True) -> bool:
    """Whether ``path`` names an argument (and input fields, list positions as digits) of
    the root field ``operation`` in the schema."""
    from graphql import GraphQLInputObjectType, GraphQLList, get_nullable_type

    from gateway.api.graphql.schema import schema

    root = schema._schema.mutation_type if mutation else schema._schema.query_type
    assert root is not None
    field = root.fields[operation]
    argument, *rest = path
    if argument not in field.args:
        return False
    current: Any = get_nullable_type(field.args[argument].type)
    for part in rest:
        if isinstance(current, GraphQLList):
            if not part.isdigit():
                return False
            current = get_nullable_type(current.of_type)
        elif isinstance(current, GraphQLInputObjectType) and part in current.fields:
            current = get_nullable_type(current.fields[part].type)
        else:
            return False
    return True


BAD_LINE = {"amount": "-5.00", "sku": "A"}
PATH_CASES: list[tuple[str, str, dict[str, Any], list[str]]] = [
    (
        "createPromotion",
        "mutation($input: CreatePromotionInput!) { createPromotion(input: $input) { %s } }",
        {
            "input": {
                "partner": "skyway",
                "promotion": {
                    "name": "Late",
                    "startsAt": "2026-06-02T00:00:00Z",
                    "endsAt": "2026-06-01T00:00:00Z",
                    "bonus": 5,
                },
            }
        },
        ["input", "promotion", "endsAt"],
    ),
    (
        "createPromotion",
        "mutation($input: CreatePromotionInput!) { createPromotion(input: $input) { %s } }",
        {
            "input": {
                "partner": "skyway",
                "promotion": {
                    "name": "Low",
                    "startsAt": "2026-06-01T00:00:00Z",
                    "endsAt": "2026-06-02T00:00:00Z",
                    "bonus": 5,
                    "minAmount": "-1",
                },
            }
        },
        ["input", "promotion", "minAmount"],
    ),
    (
        "earnPoints",
        "mutation($input: EarnPointsInput!) { earnPoints(input: $input) { %s } }",
        {
            "input": {
                "partner": "skyway",
                "member": {"partnerCustomerId": "C-1"},
                "idempotencyKey": "line",
                "purchase": {"lines": [{"amount": "5.00"}, BAD_LINE]},
            }
        },
        ["input", "purchase", "lines", "1", "amount"],
    ),
    (
        "earnPoints",
        "mutation($input: EarnPointsInput!) { earnPoints(input: $input) { %s } }",
        {
            "input": {
                "partner": "skyway",
                "member": {"partnerCustomerId": "C-1"},
                "idempotencyKey": "whole",
                "purchase": {"amount": "-3"},
            }
        },
        ["input", "purchase", "amount"],
    ),
    (
        "earnPoints",
        "mutation($input: EarnPointsInput!) { earnPoints(input: $input) { %s } }",
        {
            "input": {
                "partner": "skyway",
                "member": {"partnerCustomerId": "C-1"},
                "idempotencyKey": "amount",
                "purchaseAmount": "-3",
            }
        },
        ["input", "purchaseAmount"],
    ),
    (
        "earnPointsBulk",
        "mutation($input: EarnPointsBulkInput!) { earnPointsBulk(input: $input) "
        "{ results { %s } } }",
        {
            "input": {
                "partner": "skyway",
                "lines": [
                    {"member": {"partnerCustomerId": "C-1"}, "idempotencyKey": "b1", "points": 5},
                    {
                        "member": {"partnerCustomerId": "C-1"},
                        "idempotencyKey": "b2",
                        "purchase": {"lines": [BAD_LINE]},
                    },
                ],
            }
        },
        ["input", "lines", "1", "purchase", "lines", "0", "amount"],
    ),
    (
        "returnPurchase",
        "mutation($input: ReturnPurchaseInput!) { returnPurchase(input: $input) { %s } }",
        {
            "input": {
                "partner": "skyway",
                "receipt": "none",
                "amount": "-1",
                "idempotencyKey": "ret",
            }
        },
        ["input", "amount"],
    ),
    (
        "redeemPoints",
        "mutation($input: RedeemPointsInput!) { redeemPoints(input: $input) { %s } }",
        {
            "input": {
                "partner": "skyway",
                "member": {"partnerCustomerId": " "},
                "idempotencyKey": "r",
                "points": 5,
            }
        },
        ["input", "member", "partnerCustomerId"],
    ),
    (
        "createReward",
        "mutation($input: CreateRewardInput!) { createReward(input: $input) { %s } }",
        {
            "input": {
                "partner": "skyway",
                "reward": {
                    "kind": "DISCOUNT",
                    "name": "Off",
                    "pricePoints": 100,
                    "value": "4.00",
                    "stock": -1,
                },
            }
        },
        ["input", "reward", "stock"],
    ),
]


@pytest.mark.parametrize(("operation", "document", "variables", "expected"), PATH_CASES)
async def test_user_error_paths_name_the_field_the_caller_sent(
    gateway: Gateway,
    operation: str,
    document: str,
    variables: dict[str, Any],
    expected: list[str],
):
    await enrol(gateway)
    body = await gateway.gql(document % ERRORS, variables)
    result = body["data"][operation]
    errors = (
        [e for r in result["results"] for e in r["userErrors"]]
        if "results" in result
        else result["userErrors"]
    )
    assert [e["field"] for e in errors] == [expected], errors
    assert input_path_exists(operation, expected)


async def test_a_quote_names_its_own_arguments(gateway: Gateway):
    query = f"""query($purchase: PurchaseInput!) {{
      earnQuote(partner: "skyway", purchase: $purchase) {{ {ERRORS} }} }}"""
    body = await gateway.gql(query, {"purchase": {"lines": [BAD_LINE]}})
    (error,) = body["data"]["earnQuote"]["userErrors"]
    assert error["field"] == ["purchase", "lines", "0", "amount"]
    assert input_path_exists("earnQuote", error["field"], mutation=False)


async def test_a_purchase_earning_past_the_per_transfer_maximum_is_a_user_error(
    gateway: Gateway,
):
    member = await enrol(gateway)
    variables_path = {"amount": ["purchaseAmount"], "whole": ["purchase"]}
    for key, variables in (
        ("amount", {"purchaseAmount": "1000000000"}),
        ("whole", {"purchase": {"amount": "1000000000"}}),
    ):
        body = await gateway.gql(
            EARN,
            {
                "input": {
                    "partner": "skyway",
                    "member": {"id": member},
                    "idempotencyKey": key,
                    **variables,
                }
            },
        )
        result = body["data"]["earnPoints"]  # skyway gives 2 miles per EUR
        assert codes(result) == ["AMOUNT_OUT_OF_BOUNDS"] and result["transfer"] is None, result
        assert result["userErrors"][0]["field"] == ["input", *variables_path[key]]
    half = await earn_purchase(gateway, member, "500000000")
    assert half["userErrors"] == [] and half["transfer"]["points"] == BILLION


async def earn_purchase(gateway: Gateway, member: str, amount: str) -> dict[str, Any]:
    variables = {
        "partner": "skyway",
        "member": {"id": member},
        "idempotencyKey": f"buy-{amount}",
        "purchaseAmount": amount,
    }
    return payload(await gateway.gql(EARN, {"input": variables}))
