"""What signing in and linking take and give back: a sign-in's proof, its outcome, a link's
outcome, a started flow and a flow a sign-in or link uses up."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.members.rules import LINK, SIGN_IN


@dataclass(frozen=True)
class Proof:
    """What a verified ID token (or access token) proves: this identity signed in."""

    provider: str  # a partner's slug, or "coalition"
    issuer: str
    subject: str
    customer_id: str | None  # the partner's customer id, when its configuration names the claim


@dataclass(frozen=True)
class SignedIn:
    member_id: str
    created: bool


@dataclass(frozen=True)
class Linked:
    member_id: str
    merged: tuple[str, ...]  # members merged into ``member_id`` by this link
    already: bool  # the identity was this member's before


@dataclass(frozen=True)
class StartedFlow:
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class FlowUse:
    """A flow that a sign-in or link uses up in its own transaction: only when it succeeds,
    so that a callback failing for a passing reason (the database) leaves it usable."""

    secret: str  # a browser flow's state, or a native link's nonce
    purposes: tuple[str, ...] = (SIGN_IN, LINK)
    member_id: str | None = None  # a native link's: only that member may use it


FLOW_USED = "This sign-in or link was already used, or it expired: start it again."
