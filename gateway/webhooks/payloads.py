"""The JSON body of a webhook: ``{"type", "timestamp", "data"}``, one documented ``data``
per event type (the README's "Webhooks" section lists them).

Rendered when sent, from the outbox event as it is then: an erasure that scrubbed the
event or the member's enrolments reaches payloads not yet sent. Ids are GraphQL global ids
(``Member``, ``Transfer``, ``WebhookEndpoint``); ``partnerCustomerId`` is the member's
customer id at the endpoint's own partner (null when not enrolled there), never another
partner's.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.events import types
from gateway.events.event import Event

TEST = "webhook.test"
# Event ``data`` keys passed on, under their payload names (anything else stays inside).
_PASSED = {
    "kind": "kind",
    "reason": "reason",
    "to_partner": "toPartner",
    "received_points": "receivedPoints",
    "fee": "fee",
    "rate": "rate",
    "purchase_amount": "purchaseAmount",
    "reverses_kind": "reversesKind",
    "reward_id": "rewardId",
    "redemption_id": "redemptionId",
    "paid_with": "paidWith",
    "paid_points": "paidPoints",
    "via": "via",
}
_SETTLEMENT = {
    "period_id": "periodId",
    "opens_at": "opensAt",
    "closes_at": "closesAt",
    "obligation_count": "obligationCount",
}
_CONFIGURATION = {"change": "change", "source": "source"}


def global_id(type_name: str, node_id: str | int) -> str:
    """As GraphQL spells the node's id (``strawberry.relay.GlobalID``)."""
    return base64.b64encode(f"{type_name}:{node_id}".encode()).decode()


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _picked(data: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    return {name: data[key] for key, name in names.items() if data.get(key) is not None}


def event_data(event: Event, customer_id: str | None) -> dict[str, Any]:
    """``data`` for an outbox event, as the endpoint's partner may see it."""
    if event.type == types.SETTLEMENT_CLOSED:
        return _picked(event.data, _SETTLEMENT)
    if event.type == types.CONFIGURATION_CHANGED:
        return _picked(event.data, _CONFIGURATION)
    data: dict[str, Any] = {}
    if event.member_id is not None:
        data["member"] = global_id("Member", event.member_id)
        data["partnerCustomerId"] = customer_id
    if event.partner is not None:
        data["pool"] = event.partner
    if event.points is not None:
        data["points"] = event.points
    if event.transfer_id is not None:
        data["transfer"] = global_id("Transfer", event.transfer_id)
    data.update(_picked(event.data, _PASSED))
    if isinstance(event.data.get("reverses_id"), int):
        data["reverses"] = global_id("Transfer", event.data["reverses_id"])
    if event.type == types.MEMBER_MERGED and isinstance(event.data.get("retired"), str):
        data["retiredMember"] = global_id("Member", event.data["retired"])
    return data


def body(event_type: str, occurred_at: datetime, data: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": event_type, "timestamp": _stamp(occurred_at), "data": dict(data)}


def test_data(endpoint_id: int, partner: str) -> dict[str, Any]:
    return {"endpoint": global_id("WebhookEndpoint", endpoint_id), "partner": partner}
