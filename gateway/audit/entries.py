"""What an audit entry holds, and the rules that name actors and read events. Pure.

No personal data goes in: member ids are random UUIDs; partner customer ids, identity
subjects of members, names, e-mails and purchase references never do (an event's ``data``
is copied through ``SAFE_DATA`` only). So erasing a member leaves the trail as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.events import types
from gateway.events.event import Event

ACTOR_KINDS = ("member", "partner_client", "operator", "operator_client", "job", "anonymous")
OUTCOMES = ("ok", "rejected", "denied", "failed")
ANONYMOUS = "anonymous"
DENIALS = frozenset({"ACCESS_DENIED", "UNAUTHENTICATED", "FORBIDDEN", "STEP_UP_REQUIRED"})
MAX_DETAIL = 200

# Event data worth keeping: amounts, kinds and ids of the gateway's own objects.
SAFE_DATA = frozenset(
    {
        "kind",
        "to_partner",
        "received_points",
        "fee",
        "rate",
        "reverses_id",
        "reverses_kind",
        "reward_id",
        "redemption_id",
        "paid_with",
        "paid_points",
        "period_id",
        "closes_at",
        "change",
        "source",
        "via",
        "retired",
        "hold_id",
    }
)


@dataclass(frozen=True)
class Actor:
    kind: str  # one of ACTOR_KINDS
    id: str  # "member:<id>", "partner:<slug>", "operator:<sub>", "system:<job>", "anonymous"
    client_id: str | None = None

    @property
    def partner(self) -> str | None:
        return self.id.removeprefix("partner:") if self.kind == "partner_client" else None


NOBODY = Actor("anonymous", ANONYMOUS)


@dataclass(frozen=True)
class Entry:
    occurred_at: datetime
    actor: Actor
    action: str
    outcome: str = "ok"
    target_kind: str | None = None
    target_id: str | None = None
    member_id: str | None = None
    partner: str | None = None
    detail: str | None = None
    request_id: str | None = None
    source: str = "request"
    data: Mapping[str, Any] = field(default_factory=dict)


def actor_of(actor: str | None, client_id: str | None = None) -> Actor:
    """An event's actor string (``gateway.events.actor``), with the client that called."""
    if actor is None or actor == ANONYMOUS:
        return NOBODY
    if actor.startswith("member:"):
        return Actor("member", actor)
    if actor.startswith("partner:"):
        return Actor("partner_client", actor, client_id)
    if actor.startswith("system:"):
        return Actor("job", actor)
    if actor.startswith("operator:"):
        if client_id is not None and not actor.startswith("operator:cli:"):
            return Actor("operator_client", actor, client_id)
        return Actor("operator", actor)
    return Actor(ANONYMOUS, actor[:200])


def outcome_of(codes: list[str], failed: bool = False) -> str:
    """A mutation's outcome from its userErrors' codes (or an exception)."""
    if failed:
        return "failed"
    if not codes:
        return "ok"
    return "denied" if any(code in DENIALS for code in codes) else "rejected"


def detail_of(codes: list[str]) -> str | None:
    return ",".join(dict.fromkeys(codes))[:MAX_DETAIL] or None


def _target(event: Event) -> tuple[str | None, str | None]:
    if event.transfer_id is not None:
        return "transfer", str(event.transfer_id)
    if event.type == types.SETTLEMENT_CLOSED and "period_id" in event.data:
        return "settlement_period", str(event.data["period_id"])
    if event.type == types.CONFIGURATION_CHANGED and "change" in event.data:
        return "configuration_change", str(event.data["change"])
    if event.member_id is not None:
        return "member", event.member_id
    return None, None


def from_event(event: Event) -> Entry:
    """The entry recording an event's effect: outcome ok, its actor and request."""
    actor = actor_of(event.actor, event.client_id)
    signed_in = event.type == types.MEMBER_ENROLLED and event.data.get("via") == "sign-in"
    if actor is NOBODY and signed_in and event.member_id:  # a first sign-in: the person
        actor = Actor("member", f"member:{event.member_id}")
    target_kind, target_id = _target(event)
    data = {key: value for key, value in event.data.items() if key in SAFE_DATA}
    if event.points is not None:
        data["points"] = event.points
    return Entry(
        occurred_at=event.occurred_at,
        actor=actor,
        action=event.type,
        target_kind=target_kind,
        target_id=target_id,
        member_id=event.member_id,
        partner=event.partner,
        request_id=event.request_id,
        source="event",
        data=data,
    )
