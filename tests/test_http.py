"""The endpoint against the GraphQL-over-HTTP specification, and its limits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.api.http import negotiate
from tests.conftest import Clock, Gateway, start_gateway

GQL = "application/graphql-response+json"


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    # The HTTP layer does not depend on the database: SQLite is enough here.
    async for gateway in start_gateway(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}", Clock()):
        # Every raw request here is an operator's; authentication has tests of its own.
        gateway.client.headers["authorization"] = f"Bearer {await gateway.operator_token()}"
        yield gateway


async def post(
    gateway: Gateway, body: object, accept: str | None = GQL, content_type: str = "application/json"
) -> httpx.Response:
    headers = {"content-type": content_type}
    if accept is not None:
        headers["accept"] = accept
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await gateway.client.post("/graphql", content=content, headers=headers)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/json"),
        ("", "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        (GQL, GQL),
        (f"application/json, {GQL}", GQL),
        (f"application/json;q=1, {GQL};q=0.5", "application/json"),
        (f"{GQL};q=0", None),
        ("text/html", None),
    ],
)
def test_negotiation(accept: str | None, expected: str | None) -> None:
    assert negotiate(accept) == expected


async def test_success_uses_the_negotiated_media_type(gateway: Gateway):
    for accept, media in (
        (GQL, GQL),
        ("application/json", "application/json"),
        (None, "application/json"),
    ):
        response = await post(gateway, {"query": "{ partners { slug } }"}, accept)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(media)
        assert len(response.json()["data"]["partners"]) == 4


async def test_parse_and_validation_errors_are_400_with_graphql_response_json(gateway: Gateway):
    for query in ("{ partners { slug ", "{ nothingHere }", "query($x: Int!) { partners { slug } }"):
        response = await post(gateway, {"query": query})
        assert response.status_code == 400, query
        body = response.json()
        assert "data" not in body and body["errors"], body


async def test_variable_coercion_errors_are_400(gateway: Gateway):
    query = (
        "query($input: QuoteConversionInput!) { quoteConversion(input: $input) { quote { fee } } }"
    )
    response = await post(gateway, {"query": query, "variables": {"input": {"points": "many"}}})
    assert response.status_code == 400 and "data" not in response.json()


async def test_request_errors_are_200_for_legacy_json_clients(gateway: Gateway):
    response = await post(gateway, {"query": "{ nothingHere }"}, accept="application/json")
    assert response.status_code == 200
    assert "data" not in response.json() and response.json()["errors"]


async def test_field_errors_keep_200_and_data(gateway: Gateway):
    query = '{ partners { slug } member(id: "x") { transfers(first: 500) { edges { cursor } } } }'
    response = await post(gateway, {"query": query})
    assert response.status_code == 200
    assert response.json()["data"]["partners"]


async def test_malformed_http_requests(gateway: Gateway):
    assert (await post(gateway, b"{not json")).status_code == 400
    assert (await post(gateway, [{"query": "{ partners { slug } }"}])).status_code == 400
    assert (await post(gateway, {"variables": {}})).status_code == 400
    assert (await post(gateway, {"query": 42})).status_code == 400
    assert (
        await post(gateway, {"query": "{ partners { slug } }", "variables": [1]})
    ).status_code == 400
    assert (
        await post(gateway, {"query": "{ partners { slug } }", "operationName": 3})
    ).status_code == 400
    unsupported = await post(gateway, {"query": "{ partners { slug } }"}, content_type="text/plain")
    assert unsupported.status_code == 415
    not_acceptable = await post(gateway, {"query": "{ partners { slug } }"}, accept="text/html")
    assert not_acceptable.status_code == 406
    unknown_operation = await post(
        gateway, {"query": "query A { partners { slug } }", "operationName": "B"}
    )
    assert unknown_operation.status_code == 400
    deep = (
        b'{"query": "{ partners { slug } }", "variables": {"a": ' + b"[" * 100_000 + b"]" * 100_000
    )
    assert (await post(gateway, deep + b"}}")).status_code == 400
    huge = await post(gateway, {"query": "{ partners { slug } }", "pad": "x" * 4_300_000})
    assert huge.status_code == 413
    for response in (unsupported, not_acceptable, huge):
        assert response.json()["errors"][0]["message"]


async def test_get_serves_queries_but_refuses_mutations(gateway: Gateway):
    ok = await gateway.client.get(
        "/graphql", params={"query": "{ partners { slug } }"}, headers={"accept": GQL}
    )
    assert ok.status_code == 200 and len(ok.json()["data"]["partners"]) == 4
    mutation = (
        'mutation { enrolMember(input: {partner: "skyway", partnerCustomerId: "G"}) { created } }'
    )
    refused = await gateway.client.get(
        "/graphql", params={"query": mutation}, headers={"accept": GQL}
    )
    assert refused.status_code == 405 and refused.headers["allow"] == "POST"
    bad_variables = await gateway.client.get(
        "/graphql", params={"query": "{ partners { slug } }", "variables": "{nope"}
    )
    assert bad_variables.status_code == 400
    assert (await gateway.client.put("/graphql")).status_code == 405
    assert (
        await gateway.gql('{ memberByEnrolment(partner: "skyway", partnerCustomerId: "G") { id } }')
    )["data"]["memberByEnrolment"] is None


async def test_graphiql_is_served_to_browsers(gateway: Gateway):
    response = await gateway.client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200 and "graphiql" in response.text.lower()
    assert (await gateway.client.get("/")).status_code in (302, 307)
    assert (await gateway.client.get("/healthz")).json() == {"status": "ok"}


async def test_query_depth_tokens_and_aliases_are_limited(gateway: Gateway):
    deep = "{ partners { " + "conversionRules { fromPartner { " * 6 + "slug" + " } }" * 6 + " } }"
    response = await post(gateway, {"query": deep})
    assert response.status_code == 400
    assert "exceeds maximum operation depth" in response.json()["errors"][0]["message"]
    wide = "{ " + " ".join(f"a{i}: partners {{ slug }}" for i in range(40)) + " }"
    assert (await post(gateway, {"query": wide})).status_code == 400
    big = "{ " + "partners { slug } " * 600 + "}"
    assert (await post(gateway, {"query": big})).status_code == 400


async def test_unexpected_errors_are_masked(gateway: Gateway):
    await gateway.service.engine.dispose()  # force a failure inside a resolver
    broken = gateway.service.engine.url.set(database="/nonexistent/dir/x.db")
    from gateway.kernel.database import create_engine

    gateway.service.uow.engine = create_engine(str(broken.render_as_string(hide_password=False)))
    member = "TWVtYmVyOjZmMWMyZjdlLThhNGItNGMxZC05ZTJmLTBhMWIyYzNkNGU1Zg=="  # a well-formed id
    response = await post(gateway, {"query": f'{{ member(id: "{member}") {{ id }} }}'})
    assert response.status_code == 200
    text = response.text
    assert "Unexpected error." in text
    for leak in ("Traceback", "sqlite", "OperationalError", "SELECT"):
        assert leak not in text
    gateway.service.uow.engine = gateway.service.engine
