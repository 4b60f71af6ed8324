"""The entry points' side of the audit trail: who a principal is as an actor, and the
direct entries of requests that post no event (sign-in, sign-out, link, refusals...)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit.entries import NOBODY, Actor, Entry
from gateway.audit.trail import AuditTrail
from gateway.auth.principal import MemberPrincipal, OperatorPrincipal, PartnerPrincipal, Principal
from gateway.events.actor import current_actor, current_request
from gateway.kernel.unit_of_work import UnitOfWork
from gateway.members.identity import IdentityService


def actor_of(principal: Principal | None) -> Actor:
    if isinstance(principal, MemberPrincipal):
        return Actor("member", principal.actor)
    if isinstance(principal, PartnerPrincipal):
        return Actor("partner_client", principal.actor, principal.client_id)
    if isinstance(principal, OperatorPrincipal):
        if principal.client:
            return Actor("operator_client", principal.actor, principal.subject)
        return Actor("operator", principal.actor)
    return NOBODY


def client_of(principal: Principal) -> str | None:
    """The OAuth client behind a principal (partner apps and operator clients)."""
    return actor_of(principal).client_id


def cli_actor() -> Actor:
    """The CLI's operator (``operator:cli:<user>``, set by ``gateway.api.cli``)."""
    actor = current_actor.get() or "operator:cli"
    return Actor("operator", actor)


def request_id() -> str | None:
    trace = current_request.get()
    return None if trace is None else trace.request_id


async def record(
    trail: AuditTrail,
    at: datetime,
    actor: Actor,
    action: str,
    outcome: str = "ok",
    *,
    target: tuple[str, str] | None = None,
    member_id: str | None = None,
    partner: str | None = None,
    detail: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Append a direct entry for the current request (its id from the middleware)."""
    await trail.record(
        Entry(
            occurred_at=at,
            actor=actor,
            action=action,
            outcome=outcome,
            target_kind=target[0] if target else None,
            target_id=target[1] if target else None,
            member_id=member_id,
            partner=partner,
            detail=detail,
            request_id=request_id(),
            data=data or {},
        )
    )


@dataclass
class Attempt:
    """What a callback learns as it goes, for its audit entry."""

    action: str = "sign_in"  # or "link"
    actor: Actor = NOBODY
    member_id: str | None = None
    merged: int = 0
    why: str | None = None  # a refusal's title as a code


async def record_callback(
    identity: IdentityService, provider: str, attempt: Attempt, outcome: str, why: str | None
) -> None:
    """A sign-in or link callback's entry: the provider and the member, never the
    person's subject or claims."""
    data: dict[str, Any] = {"provider": provider}
    if attempt.merged:
        data["merged"] = attempt.merged
    partner = provider if provider in identity.ledger.coalition.partners else None
    await record(
        AuditTrail(identity.uow),
        identity.clock(),
        attempt.actor,
        attempt.action,
        outcome,
        target=("member", attempt.member_id) if attempt.member_id else None,
        member_id=attempt.member_id,
        partner=partner,
        detail=why,
        data=data,
    )


async def record_cli(
    engine: AsyncEngine,
    action: str,
    target: tuple[str, str],
    partner: str | None = None,
    data: dict[str, Any] | None = None,
    outcome: str = "ok",
    detail: str | None = None,
    member_id: str | None = None,
) -> None:
    """A CLI command's entry, by the operator at the terminal (``operator:cli:<user>``)."""
    await record(
        AuditTrail(UnitOfWork(engine)),
        datetime.now(UTC),
        cli_actor(),
        action,
        outcome,
        target=target,
        member_id=member_id,
        partner=partner,
        detail=detail,
        data=data,
    )
