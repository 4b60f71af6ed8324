"""Opaque page cursors over an increasing number (a row's id, a line number): the one way
every connection writes and reads them."""

from __future__ import annotations

import base64

from gateway.api.graphql.errors import ArgumentError


def cursor(kind: str, number: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{number}".encode()).decode()


def position(kind: str, given: str | None) -> int | None:
    """The number ``given`` (a cursor of ``kind``) stands for; None without one. Anything
    else is the caller's mistake: BAD_USER_INPUT, never a server error."""
    if given is None:
        return None
    try:
        prefix, _, number = base64.urlsafe_b64decode(given.encode()).decode().partition(":")
        if prefix == kind and number.isascii() and number.isdigit() and len(number) < 19:
            return int(number)
    except (ValueError, UnicodeError):
        pass
    raise ArgumentError("`after` is not a cursor from this connection.")
