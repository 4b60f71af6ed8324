"""Persisted operations (Apollo's automatic persisted queries): a document sent once with its
SHA-256 runs again from the hash alone; an unknown hash asks for the text; a wrong one is
refused."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx

from tests.conftest import Gateway
from tests.test_api import enrol

GQL = "application/graphql-response+json"
MEMBER = "query($id: ID!) { member(id: $id) { id } }"
EARN = """mutation($input: EarnPointsInput!) {
  earnPoints(input: $input) { transfer { points } wallet { balance } userErrors { code } } }"""


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted(digest: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


async def post(gateway: Gateway, body: dict[str, Any], accept: str = GQL) -> httpx.Response:
    token = await gateway.operator_token()
    return await gateway.client.post(
        "/graphql", json=body, headers={"accept": accept, "authorization": f"Bearer {token}"}
    )


def codes(response: httpx.Response) -> list[str]:
    return [error["extensions"]["code"] for error in response.json().get("errors", [])]


async def test_a_document_sent_with_its_hash_runs_again_from_the_hash_alone(gateway: Gateway):
    member = await enrol(gateway)
    earn = {"partner": "skyway", "member": {"id": member}, "points": 5}
    first = await post(
        gateway,
        {
            "query": EARN,
            "variables": {"input": {**earn, "idempotencyKey": "P-1"}},
            "extensions": persisted(sha256(EARN)),
        },
    )
    assert first.status_code == 200 and "errors" not in first.json(), first.text
    again = await post(
        gateway,
        {
            "variables": {"input": {**earn, "idempotencyKey": "P-2"}},
            "extensions": persisted(sha256(EARN).upper()),
        },
    )
    assert again.status_code == 200, again.text
    assert again.json()["data"]["earnPoints"] == {
        "transfer": {"points": 5},
        "wallet": {"balance": 10},
        "userErrors": [],
    }
    # By GET too, for a query, with the extensions as JSON in the URL.
    await post(gateway, {"query": MEMBER, "extensions": persisted(sha256(MEMBER))})
    token = await gateway.operator_token()
    params = {
        "variables": json.dumps({"id": member}),
        "extensions": json.dumps(persisted(sha256(MEMBER))),
    }
    got = await gateway.client.get(
        "/graphql", params=params, headers={"accept": GQL, "authorization": f"Bearer {token}"}
    )
    assert got.status_code == 200 and got.json()["data"]["member"]["id"] == member, got.text


async def test_an_unknown_hash_asks_for_the_document(gateway: Gateway):
    member = await enrol(gateway)
    for accept in (GQL, "application/json"):
        missed = await post(
            gateway,
            {"variables": {"id": member}, "extensions": persisted(sha256(MEMBER + " "))},
            accept,
        )
        # 200, as Apollo's clients expect before they send the text.
        assert missed.status_code == 200, missed.text
        assert missed.json()["errors"][0]["message"] == "PersistedQueryNotFound"
        assert codes(missed) == ["PERSISTED_QUERY_NOT_FOUND"] and "data" not in missed.json()


async def test_a_wrong_or_malformed_hash_is_refused_and_nothing_is_remembered(gateway: Gateway):
    member = await enrol(gateway)
    wrong = sha256("{ __typename }")
    refused = await post(
        gateway, {"query": MEMBER, "variables": {"id": member}, "extensions": persisted(wrong)}
    )
    assert refused.status_code == 400 and codes(refused) == ["PERSISTED_QUERY_HASH_MISMATCH"]
    unknown = await post(gateway, {"variables": {"id": member}, "extensions": persisted(wrong)})
    assert codes(unknown) == ["PERSISTED_QUERY_NOT_FOUND"]
    for shape in (
        {"version": 2, "sha256Hash": sha256(MEMBER)},
        {"version": 1, "sha256Hash": "not-a-hash"},
        {"version": 1},
        "abc",
    ):
        bad = await post(gateway, {"query": MEMBER, "extensions": {"persistedQuery": shape}})
        assert bad.status_code == 400 and codes(bad) == ["BAD_REQUEST"], (shape, bad.text)


async def test_a_persisted_document_is_still_checked_like_any_other(gateway: Gateway):
    hostile = '{ promotions(partner: "sky\\u0000way") { name } }'
    first = await post(gateway, {"query": hostile, "extensions": persisted(sha256(hostile))})
    assert first.status_code == 400 and codes(first) == ["BAD_USER_INPUT"]
    again = await post(gateway, {"extensions": persisted(sha256(hostile))})
    assert again.status_code == 400 and codes(again) == ["BAD_USER_INPUT"]
    mutation = await post(gateway, {"query": EARN, "extensions": persisted(sha256(EARN))})
    token = await gateway.operator_token()
    params = {"extensions": json.dumps(persisted(sha256(EARN)))}
    by_get = await gateway.client.get(
        "/graphql", params=params, headers={"accept": GQL, "authorization": f"Bearer {token}"}
    )
    assert mutation.status_code == 400  # no variables: refused before it runs
    assert by_get.status_code == 405  # a mutation only by POST, persisted or not
