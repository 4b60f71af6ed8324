"""Page cursors: what one connection gives back reads back; anything else is the caller's
mistake (BAD_USER_INPUT), never a server error."""

from __future__ import annotations

import base64

import pytest

from gateway.api.graphql import cursors
from gateway.api.graphql.errors import ArgumentError


def test_a_cursor_reads_back_in_its_own_connection_only() -> None:
    assert cursors.position("audit", cursors.cursor("audit", 42)) == 42
    assert cursors.position("audit", None) is None
    with pytest.raises(ArgumentError, match="not a cursor from this connection"):
        cursors.position("delivery", cursors.cursor("audit", 42))


@pytest.mark.parametrize(
    "given",
    [
        "",
        "garbage",
        "%%%",
        base64.urlsafe_b64encode(b"audit:").decode(),
        base64.urlsafe_b64encode(b"audit:-1").decode(),
        base64.urlsafe_b64encode("audit:²".encode()).decode(),
        base64.urlsafe_b64encode(b"audit:" + b"9" * 19).decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_anything_else_is_a_bad_cursor(given: str) -> None:
    with pytest.raises(ArgumentError):
        cursors.position("audit", given)
