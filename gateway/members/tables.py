"""Tables of members' sign-in: linked identities, sign-in flows and browser sessions.
Migration 0002 creates them."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from gateway.kernel.schema import Moment


class Identity(SQLModel, table=True):
    """An (issuer, subject) a member has proven by signing in. Never an e-mail address.

    An unlinked identity keeps its row (``unlinked_at`` set), so that signing in with it
    again starts a new member instead of finding the old one through a customer id."""

    __tablename__ = "identities"

    issuer: str = Field(primary_key=True, max_length=255)
    subject: str = Field(primary_key=True, max_length=255)
    member_id: str = Field(foreign_key="members.id", index=True, max_length=36)
    provider: str = Field(max_length=32)  # a partner's slug, or "coalition"
    origin: str = Field(max_length=16)  # "sign_in": it made or found the member; "link"
    linked_at: datetime = Field(sa_type=Moment)
    unlinked_at: datetime | None = Field(default=None, sa_type=Moment)


class AuthFlow(SQLModel, table=True):
    """A sign-in or link in progress, used once. ``id`` is the SHA-256 of its state
    (browser flows) or of its nonce (links from native apps)."""

    __tablename__ = "auth_flows"

    id: str = Field(primary_key=True, max_length=64)
    purpose: str = Field(max_length=16)
    provider: str = Field(max_length=32)
    nonce: str = Field(max_length=128)
    code_verifier: str | None = Field(default=None, max_length=128)
    member_id: str | None = Field(default=None, foreign_key="members.id", max_length=36)
    return_to: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(sa_type=Moment)
    expires_at: datetime = Field(sa_type=Moment, index=True)
    consumed_at: datetime | None = Field(default=None, sa_type=Moment)


class Session(SQLModel, table=True):
    """A browser session. The cookie holds a random token; only its SHA-256 is stored."""

    __tablename__ = "sessions"

    id: str = Field(primary_key=True, max_length=64)
    member_id: str | None = Field(default=None, foreign_key="members.id", max_length=36)
    operator: bool = Field(default=False)
    issuer: str = Field(max_length=255)
    subject: str = Field(max_length=255)
    mfa: bool = Field(default=False)
    step_up_from: datetime | None = Field(default=None, sa_type=Moment)
    created_at: datetime = Field(sa_type=Moment)
    expires_at: datetime = Field(sa_type=Moment)
    revoked_at: datetime | None = Field(default=None, sa_type=Moment)


identities = Identity.__table__  # type: ignore[attr-defined]
auth_flows = AuthFlow.__table__  # type: ignore[attr-defined]
sessions = Session.__table__  # type: ignore[attr-defined]
