"""Earning rules, the earn quote, sign-up bonus, activities, referrals, pending points and
returns, over HTTP on both databases, with the clock moved by hand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from partners.config.coalition import ConfigError, load_coalition
from tests.conftest import Clock, Gateway, start_gateway
from tests.operations import ENROL, ERRORS, REDEEM, codes, payload

COALITION = 'name = "Programme"\nsettlement_currency = "EUR"\n'
SHOP = """
slug = "shop"
name = "Shop"
point_value = "0.01"
[currency]
code = "SHP"
name = "shop points"
[earn]
points_per_unit = "1"
[[multipliers]]
sku = "SKU-1"
factor = "3"
[[multipliers]]
category = "fresh"
factor = "2"
[[promotions]]
name = "Summer double"
starts = 2026-06-01
ends = 2026-07-01
multiplier = "2"
[[promotions]]
name = "Welcome bonus"
starts = 2026-01-01
ends = 2027-01-01
bonus = 100
new_at_partner = true
[signup_bonus]
points = 50
[frequency_bonus]
every = 3
period = "month"
points = 30
[[activities]]
kind = "survey"
points = 20
cap = 2
period = "month"
[referral]
referrer_points = 500
referred_points = 250
min_purchase = "20.00"
[returns]
when_spent = "negative"
negative_limit = 100
"""
STORE = """
slug = "store"
name = "Store"
point_value = "0.005"
[currency]
code = "STP"
name = "store points"
[earn]
points_per_unit = "10"
[pending]
return_window_days = 14
[returns]
when_spent = "cap"
"""

EARN = f"""
mutation($input: EarnPointsInput!) {{
  earnPoints(input: $input) {{
    transfer {{ id points }} wallet {{ balance }} breakdown {{ rule description points }}
    pending idempotentReplay {ERRORS}
  }}
}}"""
QUOTE = """
query($partner: String!, $purchase: PurchaseInput!, $member: MemberReferenceInput) {
  earnQuote(partner: $partner, purchase: $purchase, member: $member) {
    quote { points breakdown { rule points } } userErrors { code message }
  }
}"""
WALLET = """
query($id: ID!, $partner: String!) {
  member(id: $id) { wallet(partner: $partner) { balance available pending owed } }
}"""
ACTIVITY = f"""
mutation($input: RecordActivityInput!) {{
  recordActivity(input: $input) {{ transfer {{ points }} {ERRORS} }}
}}"""
RETURN = f"""
mutation($input: ReturnPurchaseInput!) {{
  returnPurchase(input: $input) {{ clawedBack owed uncollected idempotentReplay {ERRORS} }}
}}"""
REFERRAL_CODE = "query($id: ID!) { member(id: $id) { referralCode } }"
APPLY = f"""
mutation($input: ApplyReferralCodeInput!) {{
  applyReferralCode(input: $input) {{ applied {ERRORS} }}
}}"""


@pytest.fixture
async def gw(database_url: str, clock: Clock, tmp_path: Path) -> AsyncIterator[Gateway]:
    config = tmp_path / "config"
    config.mkdir()
    (config / "coalition.toml").write_text(COALITION)
    (config / "shop.toml").write_text(SHOP)
    (config / "store.toml").write_text(STORE)
    async for gateway in start_gateway(database_url, clock, config_dir=str(config)):
        yield gateway


async def enrol(gw: Gateway, partner: str, customer: str) -> str:
    result = payload(
        await gw.gql(ENROL, {"input": {"partner": partner, "partnerCustomerId": customer}})
    )
    assert result["userErrors"] == []
    member: str = result["member"]["id"]
    return member


async def buy(
    gw: Gateway, member: str, key: str, partner: str = "shop", **purchase: Any
) -> dict[str, Any]:
    variables = {"partner": partner, "member": {"id": member}, "idempotencyKey": key}
    return payload(await gw.gql(EARN, {"input": {**variables, "purchase": purchase}}))


async def wallet(gw: Gateway, member: str, partner: str = "shop") -> dict[str, int]:
    body = await gw.gql(WALLET, {"id": member, "partner": partner})
    found: dict[str, int] = body["data"]["member"]["wallet"]
    return found


async def give_back(
    gw: Gateway, receipt: str, amount: str, key: str, partner: str = "shop"
) -> dict[str, Any]:
    variables = {"partner": partner, "receipt": receipt, "amount": amount, "idempotencyKey": key}
    return payload(await gw.gql(RETURN, {"input": variables}))


LINES = [
    {"amount": "10.00", "sku": "SKU-1"},
    {"amount": "5.50", "category": "fresh"},
    {"amount": "4.50", "category": "misc"},
]


# ---- the rules and their order ----------------------------------------------------------


async def test_a_purchase_earns_rule_by_rule_and_the_quote_agrees(gw: Gateway):
    member = await enrol(gw, "shop", "S-1")
    assert (await wallet(gw, member))["balance"] == 50  # the sign-up bonus
    quote = payload(
        await gw.gql(
            QUOTE, {"partner": "shop", "purchase": {"lines": LINES}, "member": {"id": member}}
        )
    )
    earned = await buy(gw, member, "R-1", lines=LINES)
    assert earned["userErrors"] == []
    rules = [(a["rule"], a["points"]) for a in earned["breakdown"]]
    # base 20; SKU-1 x3 adds 20, fresh x2 adds 5; the summer double adds the 45 so far;
    # the welcome bonus, for a first purchase here, adds 100.
    assert rules == [
        ("base", 20),
        ("product", 20),
        ("product", 5),
        ("promotion", 45),
        ("promotion", 100),
    ]
    assert earned["transfer"]["points"] == 190
    assert quote["quote"]["points"] == 190
    assert [(a["rule"], a["points"]) for a in quote["quote"]["breakdown"]] == rules
    assert (await wallet(gw, member))["balance"] == 240
    again = await buy(gw, member, "R-1", lines=LINES)
    assert again["idempotentReplay"] is True and again["breakdown"] == earned["breakdown"]
    assert (await wallet(gw, member))["balance"] == 240


async def test_promotions_are_time_boxed_and_the_third_purchase_gets_the_frequency_bonus(
    gw: Gateway, clock: Clock
):
    member = await enrol(gw, "shop", "S-1")
    clock.now = clock.now.replace(month=7, day=2)  # the summer double is over
    first = await buy(gw, member, "R-1", amount="10.00")
    assert [a["rule"] for a in first["breakdown"]] == ["base", "promotion"]  # welcome only
    second = await buy(gw, member, "R-2", amount="10.00")
    assert [(a["rule"], a["points"]) for a in second["breakdown"]] == [("base", 10)]
    third = await buy(gw, member, "R-3", amount="10.00")
    assert [(a["rule"], a["points"]) for a in third["breakdown"]] == [
        ("base", 10),
        ("frequency", 30),
    ]
    clock.now = clock.now.replace(month=8, day=1)  # a new month counts afresh
    fourth = await buy(gw, member, "R-4", amount="10.00")
    assert [a["rule"] for a in fourth["breakdown"]] == ["base"]


async def test_bad_purchases_are_refused_and_post_nothing(gw: Gateway):
    member = await enrol(gw, "shop", "S-1")
    cases = [
        ({"amount": "10.00", "lines": [{"amount": "9.00"}]}, "INVALID_INPUT"),
        ({}, "INVALID_INPUT"),
        ({"amount": "-1"}, "AMOUNT_NOT_POSITIVE"),
    ]
    for index, (purchase, code) in enumerate(cases):
        result = await buy(gw, member, f"K-{index}", **purchase)
        assert codes(result) == [code], (purchase, result)
    at_store = await enrol(gw, "store", "T-1")
    tiny = await buy(gw, at_store, "tiny", partner="store", amount="0.09")
    assert codes(tiny) == ["AMOUNT_TOO_SMALL"]
    both = payload(
        await gw.gql(
            EARN,
            {
                "input": {
                    "partner": "shop",
                    "member": {"id": member},
                    "points": 5,
                    "purchase": {"amount": "1.00"},
                    "idempotencyKey": "both",
                }
            },
        )
    )
    assert codes(both) == ["INVALID_INPUT"]
    assert (await wallet(gw, member))["balance"] == 50


async def test_the_sign_up_bonus_is_paid_once(gw: Gateway):
    member = await enrol(gw, "shop", "S-1")
    assert await enrol(gw, "shop", "S-1") == member
    assert (await wallet(gw, member))["balance"] == 50
    other = await enrol(gw, "store", "T-1")  # no bonus configured there
    assert (await wallet(gw, other, "store"))["balance"] == 0


async def test_activities_are_capped_per_period(gw: Gateway, clock: Clock):
    member = await enrol(gw, "shop", "S-1")

    async def survey(key: str, kind: str = "SURVEY") -> dict[str, Any]:
        variables = {"partner": "shop", "member": {"id": member}, "activity": kind}
        return payload(await gw.gql(ACTIVITY, {"input": {**variables, "idempotencyKey": key}}))

    assert (await survey("a-1"))["transfer"]["points"] == 20
    assert (await survey("a-1"))["transfer"]["points"] == 20  # a retry, not a second survey
    assert (await survey("a-2"))["userErrors"] == []
    assert codes(await survey("a-3")) == ["ACTIVITY_CAP_REACHED"]
    assert codes(await survey("a-4", "REVIEW")) == ["UNKNOWN_ACTIVITY"]
    assert (await wallet(gw, member))["balance"] == 90
    clock.now += timedelta(days=31)
    assert (await survey("a-3"))["userErrors"] == []  # the corrected retry, next month
    assert (await wallet(gw, member))["balance"] == 110


async def test_referral_bonuses_are_paid_once_at_the_first_qualifying_purchase(gw: Gateway):
    referrer = await enrol(gw, "shop", "S-1")
    friend = await enrol(gw, "shop", "S-2")
    code = (await gw.gql(REFERRAL_CODE, {"id": referrer}))["data"]["member"]["referralCode"]
    assert code and len(code) == 8
    assert (await gw.gql(REFERRAL_CODE, {"id": referrer}))["data"]["member"]["referralCode"] == code

    async def apply(member: str, text: str) -> dict[str, Any]:
        return payload(await gw.gql(APPLY, {"input": {"memberId": member, "code": text}}))

    assert codes(await apply(referrer, code)) == ["SELF_REFERRAL"]
    assert codes(await apply(friend, "NOPE1234")) == ["UNKNOWN_REFERRAL_CODE"]
    assert (await apply(friend, code.lower()))["applied"] is True
    assert codes(await apply(friend, code)) == ["ALREADY_REFERRED"]
    await buy(gw, friend, "small", amount="5.00")  # below the qualifying 20.00
    assert (await wallet(gw, referrer))["balance"] == 50
    await buy(gw, friend, "big", amount="25.00")
    assert (await wallet(gw, referrer))["balance"] == 550
    await buy(gw, friend, "again", amount="25.00")
    assert (await wallet(gw, referrer))["balance"] == 550
    # The friend: 50 sign-up, 5x2+100 first purchase (summer double, welcome), 25x2 and
    # 250 referral, 25x2 again and 30 for the third purchase this month.
    assert (await wallet(gw, friend))["balance"] == 50 + 110 + 50 + 250 + 50 + 30


# ---- pending points and returns ---------------------------------------------------------


async def test_pending_points_are_shown_not_spendable_and_mature_after_the_window(
    gw: Gateway, clock: Clock
):
    member = await enrol(gw, "store", "T-1")
    earned = await buy(gw, member, "R-1", partner="store", amount="30.00")
    assert earned["pending"] is True and earned["transfer"]["points"] == 300
    assert await wallet(gw, member, "store") == {
        "balance": 0,
        "available": 0,
        "pending": 300,
        "owed": 0,
    }
    spend = payload(
        await gw.gql(
            REDEEM,
            {
                "input": {
                    "partner": "store",
                    "member": {"id": member},
                    "points": 10,
                    "idempotencyKey": "p-1",
                }
            },
        )
    )
    assert codes(spend) == ["INSUFFICIENT_POINTS"]
    programme = _programme(gw)
    clock.now += timedelta(days=13)
    assert await programme.mature_due() == 0
    # A partial return inside the window cancels that part of the pending points.
    returned = await give_back(gw, "R-1", "10.00", "ret-1", partner="store")
    assert (returned["clawedBack"], returned["owed"], returned["uncollected"]) == (100, 0, 0)
    assert (await wallet(gw, member, "store"))["pending"] == 200
    clock.now += timedelta(days=1)
    assert await asyncio.gather(programme.mature_due(), programme.mature_due()) in (
        [1, 0],
        [0, 1],
    )
    assert await wallet(gw, member, "store") == {
        "balance": 200,
        "available": 200,
        "pending": 0,
        "owed": 0,
    }


async def test_returns_take_back_proportionally_and_exactly_all_in_parts(gw: Gateway):
    member = await enrol(gw, "shop", "S-1")
    await buy(gw, member, "R-1", amount="10.00")  # 10 x2 summer + 100 welcome = 120
    assert (await wallet(gw, member))["balance"] == 170
    parts = [("3.00", 36), ("3.00", 36), ("4.00", 48)]
    for index, (amount, points) in enumerate(parts):
        result = await give_back(gw, "R-1", amount, f"ret-{index}")
        assert result["clawedBack"] == points, result
    assert (await wallet(gw, member))["balance"] == 50
    assert codes(await give_back(gw, "R-1", "0.01", "ret-9")) == ["RETURN_EXCEEDS_PURCHASE"]
    assert codes(await give_back(gw, "NOPE", "1.00", "ret-8")) == ["UNKNOWN_PURCHASE"]
    replay = await give_back(gw, "R-1", "3.00", "ret-0")
    assert replay["idempotentReplay"] is True and replay["clawedBack"] == 36
    assert codes(await give_back(gw, "R-1", "1.00", "ret-0")) == ["IDEMPOTENCY_KEY_REUSED"]


async def test_a_return_of_spent_points_goes_below_zero_to_the_limit_then_is_paid_back(
    gw: Gateway,
):
    member = await enrol(gw, "shop", "S-1")
    await buy(gw, member, "R-1", amount="100.00")  # 200 + 100 welcome = 300; balance 350
    spend = payload(
        await gw.gql(
            REDEEM,
            {
                "input": {
                    "partner": "shop",
                    "member": {"id": member},
                    "points": 300,
                    "idempotencyKey": "spend",
                }
            },
        )
    )
    assert spend["userErrors"] == []
    returned = await give_back(gw, "R-1", "100.00", "ret")
    # 300 to take back, 50 in the wallet: 50 taken, 100 owed (the limit), 150 uncollected.
    assert (returned["clawedBack"], returned["owed"], returned["uncollected"]) == (50, 100, 150)
    assert await wallet(gw, member) == {"balance": -100, "available": 0, "pending": 0, "owed": 100}
    await buy(gw, member, "R-2", amount="30.00")  # 60 (summer double): pays back 60
    assert await wallet(gw, member) == {"balance": -40, "available": 0, "pending": 0, "owed": 40}
    await buy(gw, member, "R-3", amount="30.00")  # 60 more, the third purchase: +30
    assert await wallet(gw, member) == {"balance": 50, "available": 50, "pending": 0, "owed": 0}


async def test_a_capped_return_records_what_it_could_not_take(gw: Gateway, clock: Clock):
    member = await enrol(gw, "store", "T-1")
    await buy(gw, member, "R-1", partner="store", amount="10.00")
    clock.now += timedelta(days=15)
    await _programme(gw).mature_due()
    await gw.gql(
        REDEEM,
        {
            "input": {
                "partner": "store",
                "member": {"id": member},
                "points": 80,
                "idempotencyKey": "spend",
            }
        },
    )
    returned = await give_back(gw, "R-1", "10.00", "ret", partner="store")
    assert (returned["clawedBack"], returned["owed"], returned["uncollected"]) == (20, 0, 80)
    assert (await wallet(gw, member, "store"))["balance"] == 0


async def test_racing_returns_never_take_back_more_than_the_purchase_earned(
    gw: Gateway, database_url: str
):
    if not database_url.startswith("postgresql"):
        pytest.skip("concurrent writers: PostgreSQL")
    member = await enrol(gw, "shop", "S-1")
    await buy(gw, member, "R-1", amount="10.00")  # 120 points
    results = await asyncio.gather(*(give_back(gw, "R-1", "2.00", f"ret-{i}") for i in range(8)))
    ok = [r for r in results if not r["userErrors"]]
    assert len(ok) == 5
    assert all(codes(r) == ["RETURN_EXCEEDS_PURCHASE"] for r in results if r["userErrors"])
    assert sum(r["clawedBack"] for r in ok) == 120
    assert (await wallet(gw, member))["balance"] == 50


# ---- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ('[[multipliers]]\nfactor = "2"\n', "multipliers[0].sku"),
        ('[[multipliers]]\nsku = "A"\ncategory = "b"\nfactor = "2"\n', "multipliers[0].sku"),
        (
            '[[promotions]]\nname = "x"\nstarts = 2026-01-02\nends = 2026-01-01\nbonus = 1\n',
            "promotions[0].ends",
        ),
        (
            '[[promotions]]\nname = "x"\nstarts = 2026-01-01\nends = 2026-02-01\n',
            "promotions[0].multiplier",
        ),
        (
            '[[promotions]]\nname = "x"\nstarts = 2026-01-01\nends = 2026-02-01\n'
            'multiplier = "1"\n',
            "promotions[0].multiplier",
        ),
        ('[[activities]]\nkind = "dance"\npoints = 1\ncap = 1\n', "activities[0].kind"),
        ("[frequency_bonus]\nevery = 1\npoints = 5\n", "frequency_bonus.every"),
        ('[frequency_bonus]\nevery = 2\npoints = 5\nperiod = "decade"\n', "frequency_bonus.period"),
        ("[pending]\nreturn_window_days = 0\n", "pending.return_window_days"),
        ('[returns]\nwhen_spent = "negative"\n', "returns.negative_limit"),
        ('[returns]\nwhen_spent = "maybe"\n', "returns.when_spent"),
        ("[referral]\nreferrer_points = 1\n", "referral.referred_points"),
        ("[signup_bonus]\npoints = 0\n", "signup_bonus.points"),
    ],
)
def test_bad_earning_rules_are_refused_naming_the_field(
    tmp_path: Path, extra: str, field: str
) -> None:
    (tmp_path / "coalition.toml").write_text(COALITION)
    base = STORE.split("[pending]")[0]
    (tmp_path / "store.toml").write_text(base + extra)
    with pytest.raises(ConfigError) as raised:
        load_coalition(tmp_path)
    assert raised.value.field == field, raised.value


def _programme(gw: Gateway) -> Any:
    from gateway.earning.service import EarningService

    return EarningService(gw.service)


BULK = f"""
mutation($input: EarnPointsBulkInput!) {{
  earnPointsBulk(input: $input) {{
    succeeded failed {ERRORS}
    results {{ index transfer {{ points }} breakdown {{ rule points }} idempotentReplay {ERRORS} }}
  }}
}}"""


async def test_a_bulk_batch_answers_per_line_and_a_bad_line_fails_alone(gw: Gateway):
    member = await enrol(gw, "shop", "S-1")
    lines = [
        {"member": {"id": member}, "idempotencyKey": "B-1", "purchase": {"amount": "10.00"}},
        {"member": {"id": member}, "idempotencyKey": "B-2", "purchase": {"amount": "-5"}},
        {"member": {"partnerCustomerId": "NOBODY"}, "idempotencyKey": "B-3", "points": 5},
        {"member": {"partnerCustomerId": "S-1"}, "idempotencyKey": "B-4", "points": 7},
        {"member": {"id": member}, "idempotencyKey": "B-5"},
        {"member": {"id": member}, "idempotencyKey": "B-1", "purchase": {"amount": "10.00"}},
    ]
    body = payload(await gw.gql(BULK, {"input": {"partner": "shop", "lines": lines}}))
    assert (body["succeeded"], body["failed"]) == (3, 3)
    results = body["results"]
    assert [r["index"] for r in results] == list(range(6))
    assert results[0]["transfer"]["points"] == 120  # 10 x2 summer double + 100 welcome
    assert codes(results[1]) == ["AMOUNT_NOT_POSITIVE"]
    assert codes(results[2]) == ["UNKNOWN_MEMBER"]
    assert results[3]["transfer"]["points"] == 7
    assert codes(results[4]) == ["INVALID_INPUT"]
    # The same key twice in one batch: one posting, the other line answers from it.
    assert results[5]["transfer"] == results[0]["transfer"]
    assert sorted([results[0]["idempotentReplay"], results[5]["idempotentReplay"]]) == [
        False,
        True,
    ]
    assert (await wallet(gw, member))["balance"] == 50 + 120 + 7
    again = payload(await gw.gql(BULK, {"input": {"partner": "shop", "lines": lines[:1]}}))
    assert again["results"][0]["idempotentReplay"] is True
    assert (await wallet(gw, member))["balance"] == 177


async def test_a_bulk_batch_over_ten_thousand_lines_is_refused_whole(gw: Gateway):
    line = {"member": {"partnerCustomerId": "S-1"}, "idempotencyKey": "k", "points": 1}
    body = payload(await gw.gql(BULK, {"input": {"partner": "shop", "lines": [line] * 10_001}}))
    assert codes(body) == ["TOO_MANY_LINES"] and body["results"] == []


CREATE_PROMOTION = f"""
mutation($input: CreatePromotionInput!) {{
  createPromotion(input: $input) {{ promotion {{ id name active configured }} {ERRORS} }}
}}"""
UPDATE_PROMOTION = f"""
mutation($input: UpdatePromotionInput!) {{
  updatePromotion(input: $input) {{ promotion {{ id active }} {ERRORS} }}
}}"""
PROMOTIONS = """
query($partner: String) { promotions(partner: $partner) { name configured bonus multiplier } }
"""


def promotion(**fields: Any) -> dict[str, Any]:
    return {
        "name": "Flash bonus",
        "startsAt": "2026-06-01T00:00:00Z",
        "endsAt": "2026-06-02T00:00:00Z",
        "bonus": 40,
        **fields,
    }


async def test_operators_start_change_and_end_promotions_at_run_time(gw: Gateway, clock: Clock):
    member = await enrol(gw, "shop", "S-1")
    await buy(gw, member, "first", amount="1.00")  # the welcome bonus is spent
    created = payload(
        await gw.gql(CREATE_PROMOTION, {"input": {"partner": "shop", "promotion": promotion()}})
    )
    assert created["userErrors"] == [] and created["promotion"]["configured"] is False
    listed = (await gw.gql(PROMOTIONS, {"partner": "shop"}))["data"]["promotions"]
    assert [(p["name"], p["configured"]) for p in listed] == [
        ("Welcome bonus", True),
        ("Summer double", True),
        ("Flash bonus", False),
    ]
    earned = await buy(gw, member, "second", amount="10.00")
    assert [(a["rule"], a["description"], a["points"]) for a in earned["breakdown"]] == [
        ("base", "1 per unit spent", 10),
        ("promotion", "Summer double", 10),
        ("promotion", "Flash bonus", 40),
    ]
    ended = payload(
        await gw.gql(
            UPDATE_PROMOTION,
            {
                "input": {
                    "promotionId": created["promotion"]["id"],
                    "promotion": promotion(active=False),
                }
            },
        )
    )
    assert ended["promotion"]["active"] is False
    again = await buy(gw, member, "third", amount="10.00")  # the third this month
    assert [a["rule"] for a in again["breakdown"]] == ["base", "promotion", "frequency"]
    clock.now += timedelta(days=2)
    later = (await gw.gql(PROMOTIONS, {}))["data"]["promotions"]
    assert "Flash bonus" not in [p["name"] for p in later]


async def test_bad_promotions_are_refused_and_partners_manage_only_their_own(gw: Gateway):
    cases = [
        (
            promotion(endsAt="2026-05-01T00:00:00Z"),
            "INVALID_INPUT",
            ["input", "promotion", "endsAt"],
        ),
        (promotion(multiplier="2"), "INVALID_INPUT", ["input", "promotion", "multiplier"]),
        (
            promotion(bonus=None, multiplier="1"),
            "INVALID_INPUT",
            ["input", "promotion", "multiplier"],
        ),
        (promotion(tier="gold"), "UNKNOWN_TIER", ["input", "promotion", "tier"]),
    ]
    for fields, code, field in cases:
        result = payload(
            await gw.gql(CREATE_PROMOTION, {"input": {"partner": "shop", "promotion": fields}})
        )
        assert [(e["code"], e["field"]) for e in result["userErrors"]] == [(code, field)], fields
    store = await gw.partner_token("store")
    refused = payload(
        await gw.gql(
            CREATE_PROMOTION, {"input": {"partner": "shop", "promotion": promotion()}}, token=store
        )
    )
    assert codes(refused) == ["ACCESS_DENIED"]
    own = payload(
        await gw.gql(
            CREATE_PROMOTION, {"input": {"partner": "store", "promotion": promotion()}}, token=store
        )
    )
    assert own["userErrors"] == []
    unknown = payload(
        await gw.gql(
            UPDATE_PROMOTION,
            {"input": {"promotionId": "UHJvbW90aW9uOjk5", "promotion": promotion()}},
        )
    )
    assert codes(unknown) == ["UNKNOWN_PROMOTION"]
