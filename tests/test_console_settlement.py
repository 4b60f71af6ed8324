"""/console/settlement and the `openObligations` query it reads: the open obligations per
pair and partner, what a close up to a moment would take, closing, and the statement's CSV
downloaded with the operator's browser session."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from gateway.auth.providers import COALITION
from tests.conftest import Clock, Gateway
from tests.sso import CLOCK, Brands, as_browser, sign_in
from tests.test_settlement import END, T0, close, movements

OPEN = """
query($until: DateTime) { openObligations(until: $until) {
  since until currency obligationCount total { amount currency }
  pairs { debtor creditor amount { amount } obligationCount firstCreatedAt lastCreatedAt }
  positions { partner payable { amount } receivable { amount } net { amount } }
} }"""
BROWSER = {"accept": "text/html"}


def pairs(found: dict[str, Any]) -> dict[tuple[str, str], tuple[Decimal, int]]:
    return {
        (p["debtor"], p["creditor"]): (Decimal(p["amount"]["amount"]), p["obligationCount"])
        for p in found["pairs"]
    }


def nets(found: dict[str, Any]) -> dict[str, Decimal]:
    return {p["partner"]: Decimal(p["net"]["amount"]) for p in found["positions"]}


async def open_obligations(gateway: Gateway, until: str | None = None, **expect: Any) -> Any:
    body = await gateway.gql(OPEN, {"until": until}, **expect)
    return body if expect else body["data"]["openObligations"]


async def test_the_open_obligations_per_pair_and_partner_and_what_a_close_takes(
    gateway: Gateway, clock: Clock
):
    empty = await open_obligations(gateway)
    assert empty["obligationCount"] == 0 and empty["pairs"] == [] and empty["since"] is None
    assert nets(empty) == dict.fromkeys(["brewbar", "freshmart", "harbour", "skyway"], 0)

    await movements(gateway)  # skyway owes brewbar 2.92 + 1.80; brewbar owes skyway 0.684
    found = await open_obligations(gateway)
    assert pairs(found) == {
        ("brewbar", "skyway"): (Decimal("0.684"), 1),
        ("skyway", "brewbar"): (Decimal("4.72"), 2),
    }
    assert found["total"] == {"amount": "5.404", "currency": "EUR"}
    assert found["obligationCount"] == 3 and found["currency"] == "EUR"
    assert nets(found) == {
        "brewbar": Decimal("4.036"),
        "freshmart": 0,
        "harbour": 0,
        "skyway": Decimal("-4.036"),
    }
    skyway = next(p for p in found["positions"] if p["partner"] == "skyway")
    assert skyway["payable"]["amount"] == "4.72" and skyway["receivable"]["amount"] == "0.684"

    before = await open_obligations(gateway, T0.isoformat())  # created at T0: not before it
    assert before["obligationCount"] == 0 and before["until"] == T0.isoformat()
    preview = await open_obligations(gateway, END)
    assert pairs(preview) == pairs(found)

    clock.now = T0 + timedelta(hours=2)
    closed = await close(gateway, END)
    assert closed["userErrors"] == []
    assert closed["period"]["obligationCount"] == 3 + 3  # what the preview showed, and fees
    after = await open_obligations(gateway)
    assert after["obligationCount"] == 0 and after["since"] == END


async def test_an_end_without_a_time_zone_is_a_clear_error(gateway: Gateway):
    body = await open_obligations(gateway, "2026-06-01T13:00:00", errors=True, status=400)
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "UTC offset" in error["message"]


async def test_only_operators_see_the_open_obligations(sso: Gateway, brands: Brands):
    await movements(sso)
    token = await sso.partner_token("skyway")
    assert (await open_obligations(sso, token=token))["data"]["openObligations"] is None
    bob = brands.token("skyway", "bob")
    assert (await open_obligations(sso, token=bob))["data"]["openObligations"] is None


async def test_the_operator_closes_and_downloads_the_csv_with_the_browser_session(
    sso: Gateway,
):
    await movements(sso)
    await sign_in(sso, COALITION, "olivia")
    page = await sso.client.get("/console/settlement", headers=BROWSER)
    assert page.status_code == 200, page.text
    assert 'id="matrix"' in page.text and 'id="close-form"' in page.text
    assert '<script src="/console/static/settlement.js" defer>' in page.text
    script = await sso.client.get("/console/static/settlement.js")
    assert script.status_code == 200 and "openObligations" in script.text

    found = (await as_browser(sso, OPEN, {"until": END})).json()["data"]["openObligations"]
    assert found["obligationCount"] == 3
    CLOCK.now = T0 + timedelta(hours=2)
    close_query = (
        "mutation($end: DateTime!) { closeSettlementPeriod(input: {periodEnd: $end}) "
        "{ period { number statements { partner csvPath } } userErrors { code } } }"
    )
    closed = (await as_browser(sso, close_query, {"end": END})).json()["data"]
    period = closed["closeSettlementPeriod"]["period"]
    assert closed["closeSettlementPeriod"]["userErrors"] == [] and period["number"] == 1
    path = next(s["csvPath"] for s in period["statements"] if s["partner"] == "skyway")
    csv = await sso.client.get(path)  # the session cookie only, as the page's link does
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert "gross_payable" in csv.text and ",skyway," in csv.text
