"""/console/overview: the page, its script, and the figures it reads with the operator's
browser session (liability, value, breakage per partner)."""

from __future__ import annotations

import re

from gateway.auth.providers import COALITION
from tests.conftest import Gateway
from tests.sso import as_browser, sign_in
from tests.test_api import earn, enrol

BROWSER = {"accept": "text/html"}


async def test_the_overview_page_and_the_figures_it_reads_as_the_operator(sso: Gateway):
    member = await enrol(sso)
    assert (await earn(sso, member, 2000, "E-1"))["userErrors"] == []
    await sign_in(sso, COALITION, "olivia")
    page = await sso.client.get("/console/overview", headers=BROWSER)
    assert page.status_code == 200, page.text
    assert 'aria-current="page">Overview</a>' in page.text
    assert 'id="totals"' in page.text and 'id="partners"' in page.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert all(source.startswith("/") for source in sources), sources
    script = await sso.client.get("/console/static/overview.js")
    assert script.status_code == 200 and "breakage(partner:" in script.text

    query = """{ partners { slug pointValue { amount currency }
      figures { pointsIssued pointsOutstanding liability { amount currency } } }
      b0: breakage(partner: "skyway") { points value { amount currency } } }"""
    data = (await as_browser(sso, query)).json()["data"]
    skyway = next(p for p in data["partners"] if p["slug"] == "skyway")
    assert skyway["figures"]["pointsIssued"] == 2000
    assert skyway["figures"]["liability"] == {"amount": "24.00", "currency": "EUR"}  # x 0.012
    assert data["b0"]["points"] == 0 and data["b0"]["value"]["currency"] == "EUR"


async def test_a_partner_app_gets_no_console(sso: Gateway):
    token = await sso.partner_token("skyway")
    response = await sso.client.get(
        "/console/overview", headers={**BROWSER, "authorization": f"Bearer {token}"}
    )
    assert response.status_code == 403
