"""Tables of the gateway's own authorization server: OAuth clients and signing keys.
Migration 0002 creates them."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from gateway.kernel.schema import Moment


class Client(SQLModel, table=True):
    """A partner app's (or an operator's) OAuth client. Only a hash of the secret is kept."""

    __tablename__ = "oauth_clients"

    client_id: str = Field(primary_key=True, max_length=64)
    partner: str | None = Field(default=None, max_length=32)  # None: an operator client
    scopes: str = Field(max_length=500)  # space-separated
    secret_hash: str = Field(max_length=255)
    created_at: datetime = Field(sa_type=Moment)
    rotated_at: datetime | None = Field(default=None, sa_type=Moment)
    disabled_at: datetime | None = Field(default=None, sa_type=Moment)


class SigningKey(SQLModel, table=True):
    """The gateway's own token-signing keys. The newest unretired key signs; retired keys
    stay published until every token they signed has expired."""

    __tablename__ = "signing_keys"

    kid: str = Field(primary_key=True, max_length=64)
    private_jwk: str = Field(sa_type=sa.Text)
    created_at: datetime = Field(sa_type=Moment)
    retired_at: datetime | None = Field(default=None, sa_type=Moment)


clients = Client.__table__  # type: ignore[attr-defined]
signing_keys = SigningKey.__table__  # type: ignore[attr-defined]
