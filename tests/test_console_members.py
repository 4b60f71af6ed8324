"""Members at /console/members: an operator finds a member by a partner's customer id and
reverses a transfer with a reason; the confirmation's key makes a repeated click harmless."""

from __future__ import annotations

from typing import Any

from gateway.auth.providers import COALITION
from tests.conftest import Gateway
from tests.sso import as_browser, sign_in
from tests.test_api import earn, enrol

FIND = """query($partner: String!, $customer: String!) {
  memberByEnrolment(partner: $partner, partnerCustomerId: $customer) {
    id wallets { partner { slug } balance }
    transfers(first: 1) { edges { node { id kind points } } pageInfo { hasNextPage endCursor } }
  } }"""
BY_ID = """query($id: ID!, $after: String) { member(id: $id) {
  transfers(first: 1, after: $after) { edges { node { id kind points } } } } }"""
REVERSE = """mutation($input: ReverseTransferInput!) { reverseTransfer(input: $input) {
  reversal { points reason } idempotentReplay userErrors { code message } } }"""


async def call(gateway: Gateway, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    body = (await as_browser(gateway, query, variables)).json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def test_the_page_is_served_to_an_operator(sso: Gateway):
    await sign_in(sso, COALITION, "olivia")
    page = await sso.client.get("/console/members", headers={"accept": "text/html"})
    assert page.status_code == 200 and "Find a member" in page.text
    assert "Confirm the reversal" in page.text
    script = await sso.client.get("/console/static/members.js")
    assert script.status_code == 200 and "crypto.randomUUID()" in script.text


async def test_an_operator_finds_a_member_and_reverses_a_transfer_once(sso: Gateway):
    member = await enrol(sso, "skyway", "C-77")
    await earn(sso, member, 500, "e-1")
    await earn(sso, member, 200, "e-2")
    await sign_in(sso, COALITION, "olivia")
    found = (await call(sso, FIND, {"partner": "skyway", "customer": "C-77"}))["memberByEnrolment"]
    assert found["id"] == member
    latest = found["transfers"]["edges"][0]["node"]
    assert latest["points"] == 200 and found["transfers"]["pageInfo"]["hasNextPage"]
    reversal = {"transferId": latest["id"], "idempotencyKey": "console-1", "reason": "Till error"}
    first = (await call(sso, REVERSE, {"input": reversal}))["reverseTransfer"]
    assert first["userErrors"] == [] and first["reversal"]["reason"] == "Till error"
    again = (await call(sso, REVERSE, {"input": reversal}))["reverseTransfer"]
    assert again["idempotentReplay"] is True
    after = (await call(sso, FIND, {"partner": "skyway", "customer": "C-77"}))["memberByEnrolment"]
    skyway = next(w for w in after["wallets"] if w["partner"]["slug"] == "skyway")
    assert skyway["balance"] == 500
    # A part of the first earn, as the confirmation's points field sends it; too much is refused.
    older = await call(
        sso, BY_ID, {"id": member, "after": found["transfers"]["pageInfo"]["endCursor"]}
    )
    first_earn = older["member"]["transfers"]["edges"][0]["node"]
    assert first_earn["points"] == 500
    part = {
        "transferId": first_earn["id"],
        "idempotencyKey": "console-2",
        "points": "100",
        "reason": "Part",
    }
    assert (await call(sso, REVERSE, {"input": part}))["reverseTransfer"]["reversal"][
        "points"
    ] == 100
    more = {**part, "idempotencyKey": "console-3", "points": "1000"}
    refused = (await call(sso, REVERSE, {"input": more}))["reverseTransfer"]
    assert [e["code"] for e in refused["userErrors"]] == ["AMOUNT_OUT_OF_BOUNDS"]
    nobody = await call(sso, FIND, {"partner": "skyway", "customer": "nobody"})
    assert nobody["memberByEnrolment"] is None
