"""GET /metrics: what an earn changes, bounded labels, and who may read it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from gateway.api.observability.requests import (
    ANONYMOUS,
    MAX_NAME,
    OPERATIONS,
    OTHER,
    OperationNames,
)
from tests.conftest import Clock, Gateway, start_gateway
from tests.operations import ENROL, payload

OPERATIONS.label("MetricsEarn")  # a label before the per-process cap fills, whatever runs first


EARN = """
mutation MetricsEarn($input: EarnPointsInput!) {
  earnPoints(input: $input) { transfer { id } userErrors { code } }
}"""


def sample(text: str, name: str, **labels: str) -> float:
    """The value of ``name`` with ``labels`` in a scrape (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0


async def scrape(gateway: Gateway, **headers: str) -> str:
    response = await gateway.client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def earn(gateway: Gateway, member: str, points: int, key: str) -> dict[str, Any]:
    variables = {
        "input": {
            "partner": "skyway",
            "member": {"id": member},
            "points": points,
            "idempotencyKey": key,
        }
    }
    return payload(await gateway.gql(EARN, variables))


async def test_an_earn_is_counted_by_operation_outcome_and_latency(gateway: Gateway):
    enrolled = payload(
        await gateway.gql(ENROL, {"input": {"partner": "skyway", "partnerCustomerId": "M-1"}})
    )
    member = enrolled["member"]["id"]
    before = await scrape(gateway)
    ok = {"operation": "MetricsEarn", "outcome": "ok"}
    failed = {"operation": "MetricsEarn", "outcome": "user_error"}

    assert (await earn(gateway, member, 50, "K-1"))["userErrors"] == []
    assert (await earn(gateway, member, 0, "K-2"))["userErrors"] == [
        {"code": "AMOUNT_NOT_POSITIVE"}
    ]
    after = await scrape(gateway)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("coalition_graphql_requests_total", **ok) == 1
    assert grew("coalition_graphql_requests_total", **failed) == 1
    count = "coalition_graphql_request_duration_seconds_count"
    assert grew(count, operation="MetricsEarn") == 2
    assert grew("coalition_graphql_request_duration_seconds_sum", operation="MetricsEarn") > 0
    assert grew("coalition_user_errors_total", code="AMOUNT_NOT_POSITIVE") == 1
    assert grew("coalition_http_requests_total", route="/graphql", method="POST", status="200") == 2
    # The earn's events wait for the consumers until the runner applies them.
    assert sample(after, "coalition_consumer_lag_events", consumer="challenges.awards") >= 1
    await gateway.settle_events()
    settled = await scrape(gateway)
    assert sample(settled, "coalition_consumer_lag_events", consumer="challenges.awards") == 0
    assert sample(settled, "coalition_consumer_lag_seconds", consumer="challenges.awards") == 0
    applied = "coalition_consumer_events_applied_total"
    assert sample(settled, applied, consumer="challenges.awards") > sample(
        before, applied, consumer="challenges.awards"
    )
    if gateway.service.engine.dialect.name == "postgresql":
        assert sample(settled, "coalition_db_pool_connections", state="size") == 20
        assert sample(settled, "coalition_db_pool_connections", state="in_use") >= 0
        assert "coalition_db_pool_waiting" in settled


async def test_refused_and_anonymous_requests_get_fixed_labels(gateway: Gateway):
    before = await scrape(gateway)
    await gateway.gql("query { partners { slug } }")
    broken = await gateway.gql("query Broken { partners { slug ", status=400, errors=True)
    assert broken["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    unauthenticated = await gateway.client.post("/graphql", json={"query": "{ partners { slug } }"})
    assert unauthenticated.status_code == 401
    after = await scrape(gateway)

    def grew(operation: str, outcome: str) -> float:
        labels = {"operation": operation, "outcome": outcome}
        name = "coalition_graphql_requests_total"
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew(ANONYMOUS, "ok") == 1
    assert grew("unparsed", "rejected") == 2  # the broken document names nothing
    assert grew("Broken", "rejected") == 0
    parse_failed = "coalition_graphql_errors_total"
    assert sample(after, parse_failed, code="GRAPHQL_PARSE_FAILED") > sample(
        before, parse_failed, code="GRAPHQL_PARSE_FAILED"
    )


def test_operation_names_are_cut_and_capped() -> None:
    names = OperationNames(cap=2)
    assert names.label(None) == ANONYMOUS and names.label("") == ANONYMOUS
    assert names.label("A" * 500) == "A" * MAX_NAME
    assert names.label("Second") == "Second"
    assert names.label("Third") == OTHER  # past the cap: an attacker's names share one label
    assert names.label("Second") == "Second" and names.label("A" * 80) == "A" * MAX_NAME


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"


async def test_a_metrics_token_is_required_when_set(sqlite_url: str, clock: Clock):
    token = "s3cret-metrics-token"
    async for gateway in start_gateway(sqlite_url, clock, metrics_token=token):
        refused = await gateway.client.get("/metrics")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        wrong = await gateway.client.get("/metrics", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        text = await scrape(gateway, authorization=f"Bearer {token}")
        assert "coalition_graphql_requests_total" in text


async def test_metrics_switched_off_are_not_found(sqlite_url: str, clock: Clock):
    # What production serves unless COALITION_METRICS=open or a token is set.
    async for gateway in start_gateway(sqlite_url, clock, metrics="off"):
        assert (await gateway.client.get("/metrics")).status_code == 404


async def test_the_pool_shows_connections_in_use_and_requests_waiting(pg_url: str, clock: Clock):
    async for gateway in start_gateway(pg_url, clock, db_pool_size=1, db_pool_timeout=20):
        token = await gateway.operator_token()
        enrolled = payload(
            await gateway.gql(
                ENROL, {"input": {"partner": "skyway", "partnerCustomerId": "P-1"}}, token
            )
        )
        query = {
            "query": "query($id: ID!) { member(id: $id) { id } }",
            "variables": {"id": enrolled["member"]["id"]},
        }
        headers = {"authorization": f"Bearer {token}"}
        async with gateway.service.engine.connect() as held:
            await held.execute(text("SELECT 1"))  # the pool's only connection, taken
            waiting = asyncio.create_task(
                gateway.client.post("/graphql", json=query, headers=headers)
            )
            await asyncio.sleep(0.3)
            scraped = await scrape(gateway)
        assert sample(scraped, "coalition_db_pool_connections", state="in_use") == 1
        assert sample(scraped, "coalition_db_pool_waiting") >= 1
        assert (await waiting).status_code == 200  # served once the connection came back
        assert sample(await scrape(gateway), "coalition_db_pool_waiting") == 0
