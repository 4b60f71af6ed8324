"""Payload rendering: ids as GraphQL spells them, only documented fields passed on."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.api.graphql.scalars import encode_id
from gateway.events import types
from gateway.events.event import Event, Position
from gateway.webhooks.payloads import body, event_data, global_id

AT = datetime(2026, 6, 1, 12, tzinfo=UTC)
MEMBER = "0b7c2a4e-1111-4222-8333-944455556666"


def event(kind: str, **fields: object) -> Event:
    values: dict = {"member_id": None, "partner": None, "transfer_id": None, "points": None}
    values.update(fields)
    data = values.pop("data", {})
    return Event(Position(0, 1), kind, occurred_at=AT, actor="operator:x", data=data, **values)


def test_global_ids_are_the_graphql_ones():
    assert global_id("Member", MEMBER) == encode_id("Member", MEMBER)
    assert global_id("Transfer", 42) == encode_id("Transfer", 42)


def test_a_transfer_event():
    reversal = event(
        types.TRANSFER_REVERSED,
        member_id=MEMBER,
        partner="skyway",
        transfer_id=9,
        points=5,
        data={"kind": "reversal", "reverses_id": 3, "reverses_kind": "earn", "secret": "x"},
    )
    assert event_data(reversal, "SKY-1") == {
        "member": encode_id("Member", MEMBER),
        "partnerCustomerId": "SKY-1",
        "pool": "skyway",
        "points": 5,
        "transfer": encode_id("Transfer", 9),
        "kind": "reversal",
        "reversesKind": "earn",
        "reverses": encode_id("Transfer", 3),
    }
    assert body("transfer.reversed", AT, {})["timestamp"] == "2026-06-01T12:00:00Z"


def test_coalition_wide_events_carry_nothing_of_a_partner_or_person():
    closed = event(
        types.SETTLEMENT_CLOSED,
        data={"period_id": 4, "closes_at": "2026-06-01T00:00:00+00:00", "closed_by": "alice"},
    )
    assert event_data(closed, None) == {"periodId": 4, "closesAt": "2026-06-01T00:00:00+00:00"}
    changed = event(
        types.CONFIGURATION_CHANGED, data={"change": 7, "source": "api", "lines": ["rate 1→2"]}
    )
    assert event_data(changed, None) == {"change": 7, "source": "api"}
    merged = event(types.MEMBER_MERGED, member_id=MEMBER, data={"retired": MEMBER})
    assert event_data(merged, None)["retiredMember"] == encode_id("Member", MEMBER)
