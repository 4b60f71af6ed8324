"""A bulk line's ``occurredAt``: the earning rules in force when the purchase happened apply,
however late the batch arrives; a time in the future or too old is refused on its line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from partners.config.coalition import DEMO_DIRECTORY
from tests.conftest import Clock, Gateway, start_gateway
from tests.operations import ENROL, ERRORS, codes, payload

BULK = f"""
mutation($input: EarnPointsBulkInput!) {{
  earnPointsBulk(input: $input) {{
    succeeded failed {ERRORS}
    results {{ index transfer {{ id points }} breakdown {{ rule description points }}
               idempotentReplay {ERRORS} }}
  }}
}}"""
# Brewbar's "Winter double stars" runs from 2026-11-01 to 2027-02-01 (partners/demo).
AFTER_WINTER = datetime(2027, 2, 10, 12, tzinfo=UTC)


@pytest.fixture
async def gw(database_url: str) -> AsyncIterator[Gateway]:
    clock = Clock(AFTER_WINTER)
    async for found in start_gateway(database_url, clock, config_dir=str(DEMO_DIRECTORY)):
        yield found


async def _member(gw: Gateway, customer: str) -> str:
    body = payload(
        await gw.gql(ENROL, {"input": {"partner": "brewbar", "partnerCustomerId": customer}})
    )
    member_id: str = body["member"]["id"]
    return member_id


def _line(key: str, amount: str, occurred_at: str | None = None) -> dict[str, object]:
    line: dict[str, object] = {
        "member": {"partnerCustomerId": "BB-1"},
        "idempotencyKey": key,
        "purchase": {"amount": amount},
    }
    if occurred_at is not None:
        line["occurredAt"] = occurred_at
    return line


async def _bulk(gw: Gateway, lines: list[dict[str, object]]) -> dict[str, object]:
    return payload(await gw.gql(BULK, {"input": {"partner": "brewbar", "lines": lines}}))


async def test_a_purchase_made_during_a_promotion_earns_it_when_posted_after(gw: Gateway):
    await _member(gw, "BB-1")
    body = await _bulk(
        gw,
        [
            _line("winter", "10.00", "2027-01-20T09:30:00+01:00"),
            _line("today", "10.00"),
            _line("autumn", "10.00", "2026-10-20T09:30:00Z"),
        ],
    )
    results = body["results"]
    assert isinstance(results, list)
    rules = [[award["rule"] for award in result["breakdown"]] for result in results]
    assert "promotion" in rules[0]
    assert "promotion" not in rules[1] and "promotion" not in rules[2]
    winter, today = results[0]["transfer"]["points"], results[1]["transfer"]["points"]
    assert winter > today


@pytest.mark.parametrize(
    "occurred_at",
    [
        (AFTER_WINTER + timedelta(hours=1)).isoformat(),  # in the future
        (AFTER_WINTER - timedelta(days=400)).isoformat(),  # too old to earn
    ],
)
async def test_a_purchase_time_out_of_bounds_fails_its_line_alone(gw: Gateway, occurred_at: str):
    await _member(gw, "BB-1")
    body = await _bulk(gw, [_line("bad", "10.00", occurred_at), _line("good", "10.00")])
    results = body["results"]
    assert isinstance(results, list)
    assert codes(results[0]) == ["INVALID_INPUT"]
    assert results[0]["userErrors"][0]["field"][-1] in ("occurredAt", "occurred_at")
    assert results[1]["transfer"]["points"] > 0
    assert (body["succeeded"], body["failed"]) == (1, 1)


async def test_the_purchase_time_is_part_of_what_a_key_answers_for(gw: Gateway):
    await _member(gw, "BB-1")
    first = await _bulk(gw, [_line("k", "10.00", "2027-01-20T09:30:00Z")])
    same = await _bulk(gw, [_line("k", "10.00", "2027-01-20T10:30:00+01:00")])
    other = await _bulk(gw, [_line("k", "10.00", "2027-01-21T09:30:00Z")])
    assert same["results"][0]["idempotentReplay"] is True  # type: ignore[index]
    assert same["results"][0]["transfer"] == first["results"][0]["transfer"]  # type: ignore[index]
    assert codes(other["results"][0]) == ["IDEMPOTENCY_KEY_REUSED"]  # type: ignore[index]
