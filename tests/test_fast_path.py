"""The earn's fast path (issue 11, item 5): a points earn answers with its wallet from the
posting itself (held and owed points included), sends its claim, credit and entries as one
statement on PostgreSQL, and the per-document caches of the GraphQL endpoint never let a
costly or hostile request through."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import event

from tests.conftest import Gateway
from tests.operations import ERRORS, payload
from tests.test_api import enrol
from tests.test_holds import authorize

GQL = "application/graphql-response+json"
EARN = f"""
mutation($input: EarnPointsInput!) {{
  earnPoints(input: $input) {{
    transfer {{ id points }}
    wallet {{ balance available held owed }}
    idempotentReplay {ERRORS}
  }}
}}"""


async def earn(gateway: Gateway, member: str, points: int, key: str) -> dict[str, Any]:
    variables = {"partner": "skyway", "member": {"id": member}, "points": points}
    return payload(await gateway.gql(EARN, {"input": {**variables, "idempotencyKey": key}}))


async def test_an_earn_answers_with_the_points_held_in_its_wallet(gateway: Gateway):
    member = await enrol(gateway)
    assert (await earn(gateway, member, 100, "E-1"))["userErrors"] == []
    assert (await authorize(gateway, member, 30, "H-1"))["userErrors"] == []
    earned = await earn(gateway, member, 5, "E-2")
    assert earned["wallet"] == {"balance": 105, "available": 75, "held": 30, "owed": 0}
    assert earned["transfer"]["points"] == 5 and earned["idempotentReplay"] is False
    again = await earn(gateway, member, 5, "E-2")
    assert again["idempotentReplay"] is True
    assert again["transfer"] == earned["transfer"] and again["wallet"] == earned["wallet"]
    reused = await earn(gateway, member, 6, "E-2")
    assert [e["code"] for e in reused["userErrors"]] == ["IDEMPOTENCY_KEY_REUSED"]


async def test_an_earn_posts_in_one_statement_after_the_member_lock_on_postgresql(
    gateway: Gateway,
):
    if gateway.service.engine.dialect.name != "postgresql":
        pytest.skip("SQLite keeps one statement per step")
    member = await enrol(gateway)
    await earn(gateway, member, 10, "warm-up")  # the token's signing key is read once
    token = await gateway.operator_token()
    seen: list[str] = []

    def record(*parameters: Any) -> None:
        seen.append(" ".join(str(parameters[2]).split()))

    engine = gateway.service.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        variables = {"partner": "skyway", "member": {"id": member}, "points": 7}
        body = await gateway.gql(
            EARN, {"input": {**variables, "idempotencyKey": "E-counted"}}, token=token
        )
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert payload(body)["wallet"]["balance"] == 17
    # The member lock, then one statement that claims, credits and enters; nothing after it
    # reads the wallet's figures again (what follows is the tier and challenge work after an
    # earn, not the posting's).
    assert seen[0].startswith("SELECT members.id") and "FOR NO KEY UPDATE" in seen[0]
    for part in ("INSERT INTO transfers", "INSERT INTO accounts", "INSERT INTO entries"):
        assert part in seen[1]
    for later in seen[2:]:
        for part in ("INTO transfers", "INTO entries", "FROM holds", "FROM wallet_debts"):
            assert part not in later, later


async def post(gateway: Gateway, query: str, variables: dict[str, Any]) -> httpx.Response:
    return await gateway.client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"accept": GQL, "authorization": f"Bearer {await gateway.operator_token()}"},
    )


async def test_a_document_within_budget_is_costed_again_when_a_variable_sizes_a_page(
    gateway: Gateway,
):
    member = await enrol(gateway)
    nested = """query($id: ID!, $n: Int!) { member(id: $id) { transfers(first: $n) { edges {
      node { member { transfers(first: $n) { edges { node { id } } } } } } } } }"""
    for size, status in ((10, 200), (100, 400), (10, 200)):
        response = await post(gateway, nested, {"id": member, "n": size})
        assert response.status_code == status, response.text
    refused = (await post(gateway, nested, {"id": member, "n": 100})).json()
    assert [e["extensions"]["code"] for e in refused["errors"]] == ["QUERY_TOO_COSTLY"]


async def test_an_escaped_nul_in_a_literal_is_refused_after_the_same_document_without_it(
    gateway: Gateway,
):
    clean = '{ promotions(partner: "skyway") { name } }'
    assert (await post(gateway, clean, {})).status_code == 200
    for escaped in ("\\u0000", "\\u{0}"):
        query = '{ promotions(partner: "sky' + escaped + 'way") { name } }'
        response = await post(gateway, query, {})
        assert response.status_code == 400, (escaped, response.text)
        codes = [e["extensions"]["code"] for e in response.json()["errors"]]
        assert codes == ["BAD_USER_INPUT"], (escaped, codes)
