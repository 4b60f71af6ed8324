"""Partners, conversion rules and earning rules managed at run time through GraphQL: checked,
versioned with who changed them, applied at once, and conversions keep the rate they used."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.conftest import Gateway
from tests.operations import ERRORS, payload
from tests.test_api import convert, earn, enrol
from tests.test_outbox import rows

PAYLOAD = f"change {{ number changedBy source lines }} lines {ERRORS}"
SET_RULE = f"""
mutation($input: SetConversionRuleInput!) {{ setConversionRule(input: $input) {{ {PAYLOAD} }} }}"""
END_RULE = f"""
mutation($input: EndConversionRuleInput!) {{ endConversionRule(input: $input) {{ {PAYLOAD} }} }}"""
UPDATE_PARTNER = f"""
mutation($input: UpdatePartnerInput!) {{
  updatePartner(input: $input) {{ {PAYLOAD} partner {{ name pointValue {{ amount }} }} }}
}}"""
CREATE_PARTNER = f"""
mutation($input: CreatePartnerInput!) {{ createPartner(input: $input) {{ {PAYLOAD} }} }}"""
SET_EARNING = f"""
mutation($input: SetEarningRulesInput!) {{ setEarningRules(input: $input) {{ {PAYLOAD} }} }}"""
RULES = """
query($history: Boolean!) {
  partner(slug: "skyway") {
    conversionRules(history: $history) {
      toPartner { slug } rate feePercent effectiveFrom effectiveUntil status setBy setAt
    }
  }
}"""
CHANGES = "{ configurationChanges(first: 5) { number changedBy source lines } }"


def brewbar_rules(rules: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["rate"], r["status"]) for r in rules if r["toPartner"]["slug"] == "brewbar"]


async def rules(gateway: Gateway, history: bool) -> list[dict[str, Any]]:
    body = await gateway.gql(RULES, {"history": history})
    found: list[dict[str, Any]] = body["data"]["partner"]["conversionRules"]
    return found


async def set_rule(gateway: Gateway, **fields: Any) -> dict[str, Any]:
    rule = {"fromPartner": "skyway", "toPartner": "brewbar", "feePercent": "2", **fields}
    return payload(await gateway.gql(SET_RULE, {"input": rule}))


async def test_a_new_rate_applies_at_once_and_earlier_conversions_keep_theirs(gateway: Gateway):
    member = await enrol(gateway)
    await earn(gateway, member, 10_000, "e-1")
    before = await convert(gateway, member, 1_000, "c-1")
    assert before["transfer"]["rate"] == "0.25" and before["transfer"]["receivedPoints"] == 245

    result = await set_rule(gateway, rate="0.3")  # the other terms stay as they were
    assert result["userErrors"] == []
    assert result["change"]["changedBy"] == "operator:test-operator"
    assert result["change"]["source"] == "api"
    assert any("rate 0.3" in line for line in result["lines"]), result["lines"]

    after = await convert(gateway, member, 1_000, "c-2")
    assert after["transfer"]["rate"] == "0.3" and after["transfer"]["receivedPoints"] == 294
    # A replay answers what the first call did, at the rate it used.
    again = await convert(gateway, member, 1_000, "c-1")
    assert again["idempotentReplay"] and again["transfer"]["rate"] == "0.25"

    assert brewbar_rules(await rules(gateway, history=False)) == [("0.3", "IN_FORCE")]
    history = await rules(gateway, history=True)
    assert brewbar_rules(history) == [("0.25", "ENDED"), ("0.3", "IN_FORCE"), ("0.27", "SCHEDULED")]
    assert [r["setBy"] for r in history if r["toPartner"]["slug"] == "brewbar"] == [
        "bootstrap",
        "operator:test-operator",
        "bootstrap",
    ]
    changes = (await gateway.gql(CHANGES))["data"]["configurationChanges"]
    assert [c["source"] for c in changes] == ["api", "bootstrap"]
    # Partners and webhooks hear of it through the event log (the first import is silent).
    found = [(row.type, row.actor, row.data.get("change")) for row in await rows(gateway)]
    assert [row for row in found if row[0] == "configuration.changed"] == [
        ("configuration.changed", "operator:test-operator", 2)
    ]


async def test_a_scheduled_rate_takes_effect_when_its_day_comes(gateway: Gateway):
    start = gateway.clock.now + timedelta(days=10)
    result = await set_rule(gateway, rate="0.26", effectiveFrom=start.isoformat())
    assert result["userErrors"] == []
    assert brewbar_rules(await rules(gateway, history=False)) == [("0.25", "IN_FORCE")]
    gateway.clock.now = start
    assert brewbar_rules(await rules(gateway, history=False)) == [("0.26", "IN_FORCE")]
    member = await enrol(gateway)
    await earn(gateway, member, 5_000, "e-1")
    converted = await convert(gateway, member, 1_000, "c-1")
    assert converted["transfer"]["rate"] == "0.26"


async def test_ending_and_withdrawing_rules(gateway: Gateway):
    later = gateway.clock.now + timedelta(days=30)
    await set_rule(gateway, rate="0.26", effectiveFrom=later.isoformat())
    # Withdrawn before it starts: it stays in the history.
    ended = payload(
        await gateway.gql(
            END_RULE,
            {
                "input": {
                    "fromPartner": "skyway",
                    "toPartner": "brewbar",
                    "effectiveFrom": later.isoformat(),
                }
            },
        )
    )
    assert ended["userErrors"] == []
    assert ("0.26", "WITHDRAWN") in brewbar_rules(await rules(gateway, history=True))
    # The rule in force ends now: no conversion to BrewBar until the 2027 rule.
    ended = payload(
        await gateway.gql(
            END_RULE,
            {
                "input": {
                    "fromPartner": "skyway",
                    "toPartner": "brewbar",
                    "effectiveFrom": "2026-01-01T00:00:00Z",
                }
            },
        )
    )
    assert ended["userErrors"] == []
    assert brewbar_rules(await rules(gateway, history=False)) == []
    member = await enrol(gateway)
    await earn(gateway, member, 5_000, "e-1")
    refused = await convert(gateway, member, 1_000, "c-1")
    assert [e["code"] for e in refused["userErrors"]] == ["NO_CONVERSION_RULE"]


async def test_bad_changes_are_refused_and_change_nothing(gateway: Gateway):
    past = gateway.clock.now - timedelta(days=1)
    cases = [
        (set_rule(gateway, rate="0.3", effectiveFrom=past.isoformat()), "INVALID_INPUT"),
        (set_rule(gateway, rate="-1"), "INVALID_CONFIGURATION"),
        (set_rule(gateway, rate="0.3", feePercent="100"), "INVALID_CONFIGURATION"),
        (set_rule(gateway, rate="0.3", maxPoints=10**12), "INVALID_CONFIGURATION"),
        (set_rule(gateway, rate="0.3", toPartner="nowhere"), "UNKNOWN_PARTNER"),
        (set_rule(gateway, rate="0.3", toPartner="skyway"), "INVALID_CONFIGURATION"),
        (set_rule(gateway, rate="0.3", minPoints=500, maxPoints=100), "INVALID_CONFIGURATION"),
    ]
    for call, code in cases:
        result = await call
        assert [e["code"] for e in result["userErrors"]] == [code], result
        assert result["change"] is None
    update = payload(
        await gateway.gql(
            UPDATE_PARTNER,
            {"input": {"partner": "skyway", "settings": {"pointValue": "-0.01"}}},
        )
    )
    assert [e["code"] for e in update["userErrors"]] == ["INVALID_CONFIGURATION"]
    assert "point_value" in update["userErrors"][0]["message"]
    # A provider whose credentials this deployment lacks: refused before it is written.
    sign_in = {"issuer": "https://idp.skyway.example/", "development": False}
    update = payload(
        await gateway.gql(
            UPDATE_PARTNER,
            {"input": {"partner": "skyway", "settings": {"signIn": sign_in}}},
        )
    )
    assert [e["code"] for e in update["userErrors"]] == ["INVALID_CONFIGURATION"]
    assert "COALITION_OIDC_SKYWAY_CLIENT_ID" in update["userErrors"][0]["message"]
    changes = (await gateway.gql(CHANGES))["data"]["configurationChanges"]
    assert [c["source"] for c in changes] == ["bootstrap"]
    # Only operators change the configuration.
    token = await gateway.partner_token("skyway")
    body = await gateway.gql(
        SET_RULE,
        {"input": {"fromPartner": "skyway", "toPartner": "brewbar", "rate": "9"}},
        token=token,
        errors=True,
    )
    denied = body["data"]["setConversionRule"]
    assert [e["code"] for e in denied["userErrors"]] == ["ACCESS_DENIED"]


async def test_a_dry_run_says_what_would_change(gateway: Gateway):
    result = await set_rule(gateway, rate="0.3", dryRun=True)
    assert result["change"] is None and result["userErrors"] == []
    assert any("rate 0.3" in line for line in result["lines"])
    assert brewbar_rules(await rules(gateway, history=False)) == [("0.25", "IN_FORCE")]


async def test_round_trips_that_return_more_than_they_took_are_refused(gateway: Gateway):
    # SkyWay -> BrewBar at 0.25 (2% fee), BrewBar -> SkyWay at 3 (5%): 0.70 back per mile.
    # At 5 miles per star a round trip gives back 1.16 per mile.
    rule = {"fromPartner": "brewbar", "toPartner": "skyway", "rate": "5", "feePercent": "5"}
    result = payload(await gateway.gql(SET_RULE, {"input": rule}))
    assert [e["code"] for e in result["userErrors"]] == ["RATES_ALLOW_ARBITRAGE"]
    message = result["userErrors"][0]["message"]
    assert "skyway" in message and "brewbar" in message, message
    assert result["change"] is None


async def test_partners_change_and_join_at_run_time(gateway: Gateway):
    result = payload(
        await gateway.gql(
            UPDATE_PARTNER,
            {
                "input": {
                    "partner": "skyway",
                    "settings": {
                        "name": "SkyWay",
                        "pointValue": "0.013",
                        "earnRate": {"pointsPerUnit": "3", "rounding": "DOWN"},
                    },
                }
            },
        )
    )
    assert result["userErrors"] == []
    assert result["partner"] == {"name": "SkyWay", "pointValue": {"amount": "0.013"}}
    assert any("point_value: '0.012' -> '0.013'" in line for line in result["lines"])
    quote = await gateway.gql(
        '{ earnQuote(partner: "skyway", purchase: {amount: "10.00"}) { quote { points } } }'
    )
    assert quote["data"]["earnQuote"]["quote"]["points"] == 30

    new = {
        "slug": "railco",
        "name": "RailCo",
        "currencyCode": "RAIL",
        "currencyName": "rail points",
        "pointValue": "0.01",
        "earnRate": {"pointsPerUnit": "1"},
    }
    created = payload(await gateway.gql(CREATE_PARTNER, {"input": new}))
    assert created["userErrors"] == [], created
    member = await enrol(gateway, "railco", "R-1")
    earned = await earn(gateway, member, 700, "r-1", partner="railco")
    assert earned["userErrors"] == [] and earned["wallet"]["balance"] == 700
    again = payload(await gateway.gql(CREATE_PARTNER, {"input": new}))
    assert [e["code"] for e in again["userErrors"]] == ["INVALID_INPUT"]


async def test_earning_rules_change_at_run_time(gateway: Gateway):
    result = payload(
        await gateway.gql(
            SET_EARNING,
            {"input": {"partner": "freshmart", "rules": {"signupBonus": 150}}},
        )
    )
    assert result["userErrors"] == [], result
    assert "freshmart: signup_bonus.points = 150 (new)" in result["lines"]
    member = await enrol(gateway, "freshmart", "F-9")
    body = await gateway.gql(
        "query($id: ID!) { member(id: $id) { wallets { balance partner { slug } } } }",
        {"id": member},
    )
    wallets = body["data"]["member"]["wallets"]
    assert [w["balance"] for w in wallets if w["partner"]["slug"] == "freshmart"] == [150]
