"""Partners & rates at /console/partners: an operator previews and applies a rate through
the session, sees it in the history with who set it, and is told when rates allow arbitrage."""

from __future__ import annotations

from typing import Any

from gateway.auth.providers import COALITION
from tests.conftest import Gateway
from tests.sso import as_browser, sign_in

PAYLOAD = "change { number } lines userErrors { code message }"
SET_RULE = f"""mutation($input: SetConversionRuleInput!) {{
  setConversionRule(input: $input) {{ {PAYLOAD} }} }}"""
HISTORY = """{ partner(slug: "skyway") { conversionRules(history: true) {
  toPartner { slug } rate status setBy } }
  configurationChanges(first: 5) { changedBy source lines } }"""


async def set_rule(gateway: Gateway, **fields: Any) -> dict[str, Any]:
    rule = {"fromPartner": "skyway", "toPartner": "brewbar", **fields}
    body = (await as_browser(gateway, SET_RULE, {"input": rule})).json()
    assert "errors" not in body, body
    answer: dict[str, Any] = body["data"]["setConversionRule"]
    return answer


async def test_the_page_is_served_to_an_operator(sso: Gateway):
    await sign_in(sso, COALITION, "olivia")
    page = await sso.client.get("/console/partners", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert 'id="rate-form"' in page.text and "Preview" in page.text and "History" in page.text
    script = await sso.client.get("/console/static/partners.js")
    assert script.status_code == 200 and "setConversionRule" in script.text


async def test_an_operator_previews_applies_and_sees_the_rate_in_history(sso: Gateway):
    await sign_in(sso, COALITION, "olivia")
    preview = await set_rule(sso, rate="0.3", dryRun=True)
    assert preview["change"] is None and any("0.3" in line for line in preview["lines"])
    applied = await set_rule(sso, rate="0.3")
    assert applied["userErrors"] == [] and applied["change"]["number"] > 0
    data = (await as_browser(sso, HISTORY)).json()["data"]
    mine = [r for r in data["partner"]["conversionRules"] if r["toPartner"]["slug"] == "brewbar"]
    assert ("0.3", "IN_FORCE") in [(r["rate"], r["status"]) for r in mine]
    assert any(r["setBy"] and "olivia" in r["setBy"] for r in mine), mine
    assert data["configurationChanges"][0]["source"] == "api"


async def test_rates_that_allow_arbitrage_are_refused_with_the_reason(sso: Gateway):
    await sign_in(sso, COALITION, "olivia")
    rule = {"fromPartner": "brewbar", "toPartner": "skyway", "rate": "50", "feePercent": "0"}
    body = (await as_browser(sso, SET_RULE, {"input": rule})).json()
    refused = body["data"]["setConversionRule"]
    assert [e["code"] for e in refused["userErrors"]] == ["RATES_ALLOW_ARBITRAGE"]
    assert refused["userErrors"][0]["message"] and refused["change"] is None


async def test_an_operator_changes_a_partners_settings_after_a_preview(sso: Gateway):
    await sign_in(sso, COALITION, "olivia")
    update = f"""mutation($input: UpdatePartnerInput!) {{
      updatePartner(input: $input) {{ {PAYLOAD} partner {{ name pointValue {{ amount }} }} }} }}"""
    settings = {"name": "BrewBar & Co", "pointValue": "0.05"}
    preview = (
        await as_browser(
            sso, update, {"input": {"partner": "brewbar", "settings": settings, "dryRun": True}}
        )
    ).json()
    said = preview["data"]["updatePartner"]
    assert said["change"] is None and any("BrewBar & Co" in line for line in said["lines"])
    applied = (
        await as_browser(sso, update, {"input": {"partner": "brewbar", "settings": settings}})
    ).json()
    assert applied["data"]["updatePartner"]["partner"]["name"] == "BrewBar & Co"
    assert applied["data"]["updatePartner"]["partner"]["pointValue"]["amount"] == "0.05"
    wrong = (
        await as_browser(
            sso, update, {"input": {"partner": "brewbar", "settings": {"pointValue": "-1"}}}
        )
    ).json()
    assert wrong["data"]["updatePartner"]["userErrors"], wrong
