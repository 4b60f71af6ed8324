"""Why a credential was refused."""

from __future__ import annotations


class InvalidToken(Exception):
    """A bearer token that does not authenticate anyone. ``reason`` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OAuthError(Exception):
    """An OAuth 2.0 token-endpoint error (RFC 6749 section 5.2)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
