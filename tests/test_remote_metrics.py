"""Calls to a remote partner's pool, counted by outcome as /metrics shows them."""

from __future__ import annotations

from partners.development.reference_faults import BY_KEY, TRANSACTIONS
from partners.development.reference_partner import ReferencePartner
from tests.conftest import Gateway
from tests.test_metrics import sample, scrape
from tests.test_remote_operations import (  # noqa: F401  (fixtures)
    earn,
    gw,
    member_at_northjet,
    northjet,
    redeem,
    served,
)

CALLS = "coalition_remote_calls_total"


async def test_remote_calls_are_counted_by_outcome(gw: Gateway, northjet: ReferencePartner):
    member = await member_at_northjet(gw)
    before = await scrape(gw)
    assert (await earn(gw, member, 100, "till-1", "northjet"))["userErrors"] == []
    refused = await redeem(gw, member, 5000, "till-2", "northjet")
    assert refused["userErrors"][0]["code"] == "INSUFFICIENT_POINTS"
    northjet.fail_next(TRANSACTIONS, "error", times=2)
    northjet.fail_next(BY_KEY, "error")
    unknown = await earn(gw, member, 10, "till-3", "northjet")
    assert unknown["userErrors"][0]["code"] == "PARTNER_UNAVAILABLE"
    after = await scrape(gw)

    def grew(operation: str, outcome: str) -> float:
        labels = {"partner": "northjet", "operation": operation, "outcome": outcome}
        return sample(after, CALLS, **labels) - sample(before, CALLS, **labels)

    assert grew("credit", "ok") == 1
    assert grew("debit", "refused") == 1
    assert grew("credit", "unavailable") == 1
    latency = "coalition_remote_call_duration_seconds_count"
    assert (
        sample(after, latency, partner="northjet", operation="credit")
        - sample(before, latency, partner="northjet", operation="credit")
        == 2
    )
