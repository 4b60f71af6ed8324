"""What the adapter and the reference partner agree on: limits, formats and error codes.

See ``contract.md`` and ``openapi.yaml`` beside this file for the contract itself.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime

from partners.config.reader import MAX_POINTS

__all__ = [
    "ALREADY_REVERSED",
    "INSUFFICIENT_POINTS",
    "INVALID_REQUEST",
    "KEY",
    "KEY_REUSED",
    "MAX_CUSTOMER_ID_LENGTH",
    "MAX_POINTS",
    "MAX_REFERENCE_LENGTH",
    "NOT_REVERSIBLE",
    "UNAUTHORIZED",
    "UNKNOWN_KEY",
    "UNKNOWN_MEMBER",
    "UNKNOWN_TRANSACTION",
    "derive_key",
    "format_time",
    "parse_time",
    "text_ok",
    "token_from_environment",
    "token_variable",
]

KEY = re.compile(r"[A-Za-z0-9._~:-]{1,255}")
"""An ``Idempotency-Key``: 1 to 255 characters, safe in a URL path segment as they are."""
MAX_CUSTOMER_ID_LENGTH = 128
MAX_REFERENCE_LENGTH = 500

# The ``error`` codes of the contract's JSON error bodies.
INVALID_REQUEST = "invalid_request"
UNAUTHORIZED = "unauthorized"
UNKNOWN_MEMBER = "unknown_member"
UNKNOWN_TRANSACTION = "unknown_transaction"
UNKNOWN_KEY = "unknown_key"
INSUFFICIENT_POINTS = "insufficient_points"
NOT_REVERSIBLE = "not_reversible"
KEY_REUSED = "idempotency_key_reused"
ALREADY_REVERSED = "already_reversed"


def text_ok(value: object, limit: int) -> bool:
    """Whether ``value`` is a non-blank string of at most ``limit`` characters, no controls."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= limit
        and bool(value.strip())
        and not any(unicodedata.category(char) in ("Cc", "Cs") for char in value)
    )


def derive_key(*parts: str) -> str:
    """A valid ``Idempotency-Key`` determined by ``parts`` (any text), e.g. the gateway's own
    key, the member and the saga step: ``gw-`` and the SHA-256 of the length-prefixed parts.

    The same parts always give the same key, and different parts different keys, so a caller's
    key of any shape maps to one remote key per step.
    """
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode()
        digest.update(len(data).to_bytes(8, "big") + data)
    return f"gw-{digest.hexdigest()}"


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, to the microsecond: ``2025-01-31T12:00:00.000000Z``."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 date-time with an offset, as an aware UTC datetime; None if it is not one."""
    if not isinstance(value, str) or "T" not in value.upper():
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC)


def token_variable(slug: str) -> str:
    """The environment variable holding a partner's token: ``COALITION_REMOTE_<SLUG>_TOKEN``.

    The slug is upper-cased and its hyphens become underscores (``sky-way`` gives
    ``COALITION_REMOTE_SKY_WAY_TOKEN``).
    """
    return f"COALITION_REMOTE_{slug.upper().replace('-', '_')}_TOKEN"


def token_from_environment(slug: str, environ: Mapping[str, str] = os.environ) -> str:
    """The partner's bearer token from the environment; ``LookupError`` if unset or blank."""
    name = token_variable(slug)
    token = environ.get(name, "").strip()
    if not token:
        raise LookupError(f"{name} is not set: the remote pool of '{slug}' needs its token")
    return token
