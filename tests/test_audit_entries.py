"""The pure rules of audit entries: actors from event strings, outcomes from codes, and an
event's entry, which keeps no personal data."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.audit.entries import Actor, actor_of, detail_of, from_event, outcome_of
from gateway.events import types
from gateway.events.event import Event, Position

AT = datetime(2026, 6, 1, tzinfo=UTC)


def event(type_: str, **fields: object) -> Event:
    values: dict[str, object] = {
        "position": Position(0, 1),
        "type": type_,
        "member_id": None,
        "partner": None,
        "transfer_id": None,
        "points": None,
        "occurred_at": AT,
        "actor": None,
    }
    values.update(fields)
    return Event(**values)  # type: ignore[arg-type]


def test_actors_from_event_strings() -> None:
    assert actor_of("member:m-1") == Actor("member", "member:m-1")
    assert actor_of("partner:skyway", "skyway-pos") == Actor(
        "partner_client", "partner:skyway", "skyway-pos"
    )
    assert actor_of("partner:skyway", "skyway-pos").partner == "skyway"
    assert actor_of("operator:olivia") == Actor("operator", "operator:olivia")
    assert actor_of("operator:ops", "ops") == Actor("operator_client", "operator:ops", "ops")
    assert actor_of("operator:cli:root") == Actor("operator", "operator:cli:root")
    assert actor_of("system:points.expire") == Actor("job", "system:points.expire")
    assert actor_of(None) == Actor("anonymous", "anonymous")


def test_outcomes_and_details() -> None:
    assert outcome_of([]) == "ok"
    assert outcome_of(["INSUFFICIENT_POINTS"]) == "rejected"
    assert outcome_of(["INVALID_INPUT", "ACCESS_DENIED"]) == "denied"
    assert outcome_of(["STEP_UP_REQUIRED"]) == "denied"
    assert outcome_of([], failed=True) == "failed"
    assert detail_of(["A", "B", "A"]) == "A,B"
    assert detail_of([]) is None


def test_an_events_entry_keeps_no_personal_data() -> None:
    enrolled = event(
        types.MEMBER_ENROLLED,
        member_id="m-1",
        partner="skyway",
        data={"customer_id": "SKY-1001", "via": "sign-in"},
        request_id="r-1",
    )
    entry = from_event(enrolled)
    assert entry.data == {"via": "sign-in"}  # never the customer id
    assert entry.actor == Actor("member", "member:m-1")  # a first sign-in: the person
    assert (entry.target_kind, entry.target_id, entry.request_id) == ("member", "m-1", "r-1")
    earned = event(
        types.POINTS_EARNED,
        member_id="m-1",
        transfer_id=7,
        points=50,
        actor="partner:skyway",
        client_id="pos",
        data={"kind": "earn", "reason": "receipt 88 for Jane", "purchase_amount": "9.99"},
    )
    entry = from_event(earned)
    assert entry.data == {"kind": "earn", "points": 50}
    assert (entry.target_kind, entry.target_id, entry.source) == ("transfer", "7", "event")
    assert entry.actor == Actor("partner_client", "partner:skyway", "pos")


def test_targets_of_events_without_a_transfer() -> None:
    closed = from_event(event(types.SETTLEMENT_CLOSED, data={"period_id": 3, "closed_by": "x"}))
    assert (closed.target_kind, closed.target_id) == ("settlement_period", "3")
    changed = from_event(event(types.CONFIGURATION_CHANGED, data={"change": 2, "lines": ["…"]}))
    assert (changed.target_kind, changed.target_id, changed.data) == (
        "configuration_change",
        "2",
        {"change": 2},
    )


def test_a_mutations_targets_never_come_from_a_partners_customer_ids() -> None:
    from gateway.api.graphql.audited import targets
    from gateway.api.graphql.scalars import encode_id

    looks_like_an_id = encode_id("Member", "8b1e7f4c-3b1a-4c55-9d1e-2f0f6a1b2c3d")
    found, named = targets(
        {
            "input": {
                "partner": "skyway",
                "member": {"partnerCustomerId": looks_like_an_id},
                "transferId": encode_id("Transfer", 12),
                "identityId": encode_id("Identity", "secret"),
            }
        }
    )
    assert found == {"Transfer": "12"}
    assert named == {"partner": "skyway"}
