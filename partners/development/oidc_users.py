"""The development provider's users, and what an authorization code it issued stands for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DevUser:
    """A user who can sign in; ``claims`` go into their ID and access tokens and userinfo."""

    subject: str
    name: str
    claims: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Grant:
    """What an authorization code stands for; ``used`` is set at the first redemption."""

    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    user: DevUser
    mfa: bool
    auth_time: int
    expires_at: float
    used: bool = False
    access_jti: str | None = None
