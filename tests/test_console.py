"""/console: operators' browser sessions only, pages served from the gateway's own files."""

from __future__ import annotations

import re

from gateway.auth.providers import COALITION
from tests.conftest import Gateway
from tests.sso import sign_in

BROWSER = {"accept": "text/html"}


async def test_a_visitor_without_a_session_is_sent_to_the_operators_sign_in(sso: Gateway):
    response = await sso.client.get("/console/overview", headers=BROWSER)
    assert response.status_code == 303
    assert response.headers["location"] == "/auth/login/coalition?return_to=/console/overview"


async def test_a_members_session_or_a_partner_apps_token_is_refused(sso: Gateway):
    token = await sso.partner_token("skyway")
    as_app = await sso.client.get(
        "/console", headers={**BROWSER, "authorization": f"Bearer {token}"}
    )
    assert as_app.status_code == 403 and "for coalition operators" in as_app.text
    await sign_in(sso, "skyway", "alice")
    as_member = await sso.client.get("/console", headers=BROWSER)
    assert as_member.status_code == 403 and "for coalition operators" in as_member.text


async def test_an_operator_gets_the_console_from_the_gateways_own_files(sso: Gateway):
    await sign_in(sso, COALITION, "olivia")
    response = await sso.client.get("/console", headers=BROWSER)
    assert response.status_code == 200, response.text
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy.split("style")[0]
    sources = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert sources and all(s.startswith("/") for s in sources), sources
    assert "Sign out" in response.text
    script = await sso.client.get("/console/static/console.js")
    assert script.status_code == 200 and "function chart" in script.text
    shared = await sso.client.get("/pages/static/api.js")
    assert shared.status_code == 200 and "async function gql" in shared.text
    assert (await sso.client.get("/console/nowhere", headers=BROWSER)).status_code == 404
