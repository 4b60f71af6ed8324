"""SQL for identities, sign-in flows, sessions and member merges."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.holds.tables import holds
from gateway.kernel.schema import insert_for
from gateway.ledger.tables import enrolments, members
from gateway.members.tables import auth_flows, identities, sessions


@dataclass(frozen=True)
class IdentityRecord:
    issuer: str
    subject: str
    member_id: str
    provider: str
    origin: str  # "sign_in" or "link"
    linked_at: datetime
    unlinked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.unlinked_at is None


@dataclass(frozen=True)
class FlowRecord:
    created_at: datetime
    purpose: str
    provider: str
    nonce: str
    code_verifier: str | None
    member_id: str | None
    return_to: str | None


@dataclass(frozen=True)
class SessionRecord:
    id: str
    member_id: str | None
    operator: bool
    issuer: str
    subject: str
    mfa: bool
    expires_at: datetime
    created_at: datetime
    step_up_from: datetime | None  # when this sign-in's second factor starts to count


def _identity(row: Any) -> IdentityRecord:
    return IdentityRecord(
        row.issuer,
        row.subject,
        row.member_id,
        row.provider,
        row.origin,
        row.linked_at,
        row.unlinked_at,
    )


# Identities


async def identity(connection: AsyncConnection, issuer: str, subject: str) -> IdentityRecord | None:
    """The identity, linked or unlinked."""
    row = (
        await connection.execute(
            sa.select(identities).where(
                identities.c.issuer == issuer, identities.c.subject == subject
            )
        )
    ).first()
    return _identity(row) if row else None


async def identities_of(
    connection: AsyncConnection, member_ids: Sequence[str]
) -> dict[str, list[IdentityRecord]]:
    found: dict[str, list[IdentityRecord]] = defaultdict(list)
    result = await connection.execute(
        sa.select(identities)
        .where(identities.c.member_id.in_(member_ids), identities.c.unlinked_at.is_(None))
        .order_by(identities.c.linked_at, identities.c.issuer, identities.c.subject)
    )
    for row in result:
        found[row.member_id].append(_identity(row))
    return found


async def claim_identity(
    connection: AsyncConnection,
    issuer: str,
    subject: str,
    member_id: str,
    provider: str,
    origin: str,
    at: datetime,
) -> bool:
    """Attach the identity unless it is attached already; a racing insert waits."""
    values = {
        "issuer": issuer,
        "subject": subject,
        "member_id": member_id,
        "provider": provider,
        "origin": origin,
        "linked_at": at,
    }
    statement = (
        insert_for(connection, identities)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["issuer", "subject"])
        .returning(identities.c.member_id)
    )
    return (await connection.execute(statement)).first() is not None


async def reattach_identity(
    connection: AsyncConnection,
    issuer: str,
    subject: str,
    member_id: str,
    origin: str,
    at: datetime,
) -> bool:
    """Give an unlinked identity to ``member_id``; False when it is not unlinked (any more)."""
    result = await connection.execute(
        sa.update(identities)
        .where(
            identities.c.issuer == issuer,
            identities.c.subject == subject,
            identities.c.unlinked_at.isnot(None),
        )
        .values(member_id=member_id, origin=origin, linked_at=at, unlinked_at=None)
    )
    return bool(result.rowcount)


async def unlink_identity(
    connection: AsyncConnection, issuer: str, subject: str, member_id: str, now: datetime
) -> bool:
    """Detach the identity, and end the sessions it signed in: it proves nothing now. The
    row stays, marked unlinked, so that the next sign-in with it starts a new member."""
    await connection.execute(
        sa.update(sessions)
        .where(
            sessions.c.member_id == member_id,
            sessions.c.issuer == issuer,
            sessions.c.subject == subject,
            sessions.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    result = await connection.execute(
        sa.update(identities)
        .where(
            identities.c.issuer == issuer,
            identities.c.subject == subject,
            identities.c.member_id == member_id,
            identities.c.unlinked_at.is_(None),
        )
        .values(unlinked_at=now)
    )
    return bool(result.rowcount)


# Members


async def retire_member(
    connection: AsyncConnection, retired: str, survivor: str, at: datetime
) -> None:
    """Point the retired member, and everything attached to it, at the survivor."""
    await connection.execute(
        sa.update(members)
        .where(sa.or_(members.c.id == retired, members.c.merged_into == retired))
        .values(merged_into=survivor, merged_at=at)
    )
    for table in (enrolments, identities, sessions, auth_flows, holds):
        await connection.execute(
            sa.update(table).where(table.c.member_id == retired).values(member_id=survivor)
        )


# Sign-in flows


async def insert_flow(connection: AsyncConnection, values: dict[str, Any]) -> None:
    await connection.execute(sa.insert(auth_flows).values(**values))


async def pending_flow(
    connection: AsyncConnection, flow_id: str, purposes: Sequence[str], now: datetime
) -> FlowRecord | None:
    """The flow, if it is of one of ``purposes`` and still to be used."""
    row = (
        await connection.execute(
            sa.select(*_FLOW_COLUMNS).where(
                auth_flows.c.id == flow_id,
                auth_flows.c.purpose.in_(purposes),
                auth_flows.c.consumed_at.is_(None),
                auth_flows.c.expires_at > now,
            )
        )
    ).first()
    return _flow(row) if row else None


async def consume_flow(
    connection: AsyncConnection,
    flow_id: str,
    purposes: Sequence[str],
    now: datetime,
    member_id: str | None = None,
) -> FlowRecord | None:
    """Use a flow once: None when it is unknown, used, expired, of another purpose or (when
    ``member_id`` is given) another member's, which then stays usable by its owner."""
    conditions = [
        auth_flows.c.id == flow_id,
        auth_flows.c.purpose.in_(purposes),
        auth_flows.c.consumed_at.is_(None),
        auth_flows.c.expires_at > now,
    ]
    if member_id is not None:
        conditions.append(auth_flows.c.member_id == member_id)
    statement = (
        sa.update(auth_flows).where(*conditions).values(consumed_at=now).returning(*_FLOW_COLUMNS)
    )
    row = (await connection.execute(statement)).first()
    return _flow(row) if row else None


_FLOW_COLUMNS = (
    auth_flows.c.created_at,
    auth_flows.c.purpose,
    auth_flows.c.provider,
    auth_flows.c.nonce,
    auth_flows.c.code_verifier,
    auth_flows.c.member_id,
    auth_flows.c.return_to,
)


def _flow(row: Any) -> FlowRecord:
    return FlowRecord(
        row.created_at,
        row.purpose,
        row.provider,
        row.nonce,
        row.code_verifier,
        row.member_id,
        row.return_to,
    )


async def delete_expired_flows(connection: AsyncConnection, before: datetime) -> None:
    await _delete_unlocked(connection, auth_flows, auth_flows.c.expires_at < before)


# Sessions


async def insert_session(connection: AsyncConnection, values: dict[str, Any]) -> None:
    await connection.execute(sa.insert(sessions).values(**values))


async def session(
    connection: AsyncConnection, session_id: str, now: datetime
) -> SessionRecord | None:
    row = (
        await connection.execute(
            sa.select(sessions).where(
                sessions.c.id == session_id,
                sessions.c.revoked_at.is_(None),
                sessions.c.expires_at > now,
            )
        )
    ).first()
    if row is None:
        return None
    return SessionRecord(
        row.id,
        row.member_id,
        row.operator,
        row.issuer,
        row.subject,
        row.mfa,
        row.expires_at,
        row.created_at,
        row.step_up_from,
    )


async def delete_ended_sessions(connection: AsyncConnection, before: datetime) -> None:
    await _delete_unlocked(connection, sessions, sessions.c.expires_at < before)


async def _delete_unlocked(
    connection: AsyncConnection, table: sa.Table, condition: sa.ColumnElement[bool]
) -> None:
    """Clean-up on the way: delete the rows no other transaction holds (a merge moving a
    retired member's sessions and flows holds them), so that it never waits for one."""
    doomed = sa.select(table.c.id).where(condition).with_for_update(skip_locked=True)
    await connection.execute(sa.delete(table).where(table.c.id.in_(doomed)))


async def revoke_session(connection: AsyncConnection, session_id: str, now: datetime) -> None:
    await connection.execute(
        sa.update(sessions)
        .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def partners_of(
    connection: AsyncConnection, member_ids: Sequence[str]
) -> dict[str, set[str]]:
    """Where each member holds an enrolment or a linked identity: a merged member's id
    gives its survivor's. One statement, so a merge committing meanwhile is seen whole or
    not at all (never the retired member already emptied and the survivor not yet named)."""
    found: dict[str, set[str]] = defaultdict(set)
    given = members.alias("given")
    live = sa.func.coalesce(given.c.merged_into, given.c.id)
    enrolled = (
        sa.select(given.c.id.label("member_id"), enrolments.c.partner.label("partner"))
        .join(enrolments, enrolments.c.member_id == live)
        .where(given.c.id.in_(member_ids))
    )
    signed_in = (
        sa.select(given.c.id.label("member_id"), identities.c.provider.label("partner"))
        .join(identities, identities.c.member_id == live)
        .where(given.c.id.in_(member_ids), identities.c.unlinked_at.is_(None))
    )
    for row in await connection.execute(sa.union(enrolled, signed_in)):
        found[row.member_id].add(row.partner)
    return found
