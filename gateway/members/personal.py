"""The members package's side of data rights (gateway.privacy): a member's identities and
sessions for an export (never a token or its digest), and their erasure."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.members.tables import auth_flows, identities, sessions


async def identities_of(
    connection: AsyncConnection, member_ids: Sequence[str]
) -> list[dict[str, Any]]:
    result = await connection.execute(
        sa.select(identities)
        .where(identities.c.member_id.in_(member_ids))
        .order_by(identities.c.linked_at)
    )
    return [
        {
            "memberId": row.member_id,
            "issuer": row.issuer,
            "subject": row.subject,
            "provider": row.provider,
            "origin": row.origin,
            "linkedAt": row.linked_at,
            "unlinkedAt": row.unlinked_at,
        }
        for row in result
    ]


async def sessions_of(
    connection: AsyncConnection, member_ids: Sequence[str]
) -> list[dict[str, Any]]:
    result = await connection.execute(
        sa.select(
            sessions.c.issuer,
            sessions.c.mfa,
            sessions.c.created_at,
            sessions.c.expires_at,
            sessions.c.revoked_at,
        )
        .where(sessions.c.member_id.in_(member_ids))
        .order_by(sessions.c.created_at)
    )
    return [
        {
            "issuer": row.issuer,
            "mfa": row.mfa,
            "createdAt": row.created_at,
            "expiresAt": row.expires_at,
            "revokedAt": row.revoked_at,
        }
        for row in result
    ]


async def erase_identities(
    connection: AsyncConnection, member_ids: Sequence[str], at: datetime, prefix: str
) -> int:
    """Unlink the members' identities and replace each subject by a random token (``prefix``
    before it), so that signing in with that account again starts a new member."""
    result = await connection.execute(
        sa.select(identities.c.issuer, identities.c.subject).where(
            identities.c.member_id.in_(member_ids), identities.c.subject.not_like(f"{prefix}%")
        )
    )
    rows = result.all()
    for row in rows:
        await connection.execute(
            sa.update(identities)
            .where(identities.c.issuer == row.issuer, identities.c.subject == row.subject)
            .values(
                subject=prefix + secrets.token_urlsafe(12),
                unlinked_at=sa.func.coalesce(identities.c.unlinked_at, at),
            )
        )
    return len(rows)


async def end_sessions(connection: AsyncConnection, member_ids: Sequence[str]) -> None:
    """Sign the members out everywhere: their sessions and sign-in flows are deleted."""
    await connection.execute(sa.delete(sessions).where(sessions.c.member_id.in_(member_ids)))
    await connection.execute(sa.delete(auth_flows).where(auth_flows.c.member_id.in_(member_ids)))
