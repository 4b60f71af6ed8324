"""/account: members' browser sessions only, a page from the gateway's own files; a link that
merged another member comes back saying so."""

from __future__ import annotations

import re

from gateway.auth.providers import COALITION
from tests.conftest import Gateway
from tests.sso import authorize, sign_in

BROWSER = {"accept": "text/html"}


def local_only(page: str) -> list[str]:
    sources = re.findall(r'(?:src|href|action)="([^"]+)"', page)
    assert sources and all(s.startswith("/") and not s.startswith("//") for s in sources), sources
    return sources


async def test_a_visitor_is_offered_the_brands_sign_ins_back_to_the_page(sso: Gateway):
    response = await sso.client.get("/account", headers=BROWSER)
    assert response.status_code == 303
    assert response.headers["location"] == "/account/sign-in"
    choice = await sso.client.get("/account/sign-in", headers=BROWSER)
    assert choice.status_code == 200
    assert "script-src 'self';" in choice.headers["content-security-policy"]
    sources = local_only(choice.text)
    assert "/auth/login/skyway?return_to=/account" in sources
    assert "Sign in with SkyWay" in choice.text


async def test_an_operator_or_a_partner_app_is_told_this_is_a_members_page(sso: Gateway):
    token = await sso.partner_token("skyway")
    as_app = await sso.client.get(
        "/account", headers={**BROWSER, "authorization": f"Bearer {token}"}
    )
    assert as_app.status_code == 403 and "Not a member" in as_app.text
    await sign_in(sso, COALITION, "olivia")
    as_operator = await sso.client.get("/account", headers=BROWSER)
    assert as_operator.status_code == 403
    assert "signed in as a coalition operator" in as_operator.text
    local_only(as_operator.text)


async def test_a_member_gets_the_page_from_the_gateways_own_files(sso: Gateway):
    await sign_in(sso, "skyway", "alice")
    response = await sso.client.get("/account", headers=BROWSER)
    assert response.status_code == 200, response.text
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    assert response.headers["cache-control"] == "no-store"
    sources = local_only(response.text)
    assert "/account/static/account.js" in sources
    assert "/auth/link/brewbar?return_to=/account%3Flinked%3Dbrewbar" in sources
    assert "<script>" not in response.text  # no inline script
    for name in ("account.js", "account.css"):
        asset = await sso.client.get(f"/account/static/{name}")
        assert asset.status_code == 200 and "http" not in asset.text, name
    assert (await sso.client.get("/account/static/nothing.js")).status_code == 404


async def test_a_link_that_merged_another_member_comes_back_saying_so(sso: Gateway):
    await sign_in(sso, "brewbar", "alice")  # BrewBar's BB-2002: a member of their own
    sso.client.cookies.clear()
    await sign_in(sso, "skyway", "alice")
    start = await sso.client.get("/auth/link/brewbar?return_to=/account%3Flinked%3Dbrewbar")
    assert start.status_code == 302, start.text
    callback = await authorize(start.headers["location"], "alice")
    path, _, query = callback.partition("gateway")[2].partition("?")
    answer = await sso.client.get(f"{path}?{query}")
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/account?linked=brewbar&merged=1"
    # Linking again merges nobody: the page is told only which brand.
    again = await sso.client.get("/auth/link/brewbar?return_to=/account%3Flinked%3Dbrewbar")
    callback = await authorize(again.headers["location"], "alice")
    path, _, query = callback.partition("gateway")[2].partition("?")
    answer = await sso.client.get(f"{path}?{query}")
    assert answer.headers["location"] == "/account?linked=brewbar"
