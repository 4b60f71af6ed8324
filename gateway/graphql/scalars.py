"""Scalars and global ids."""

from __future__ import annotations

import base64
import json
import re
import uuid
from decimal import Decimal

from strawberry import relay
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.types.scalar import ScalarDefinition

DECIMAL_TEXT = re.compile(r"^-?[0-9]{1,18}(\.[0-9]{1,18})?$")


def _parse_decimal(value: object) -> Decimal:
    if not isinstance(value, str):
        raise StrawberryInputCoercionError(
            f'Decimal values are strings such as "12.50", got {value!r}: a number in JSON '
            "or GraphQL may not hold a decimal fraction exactly."
        )
    if not DECIMAL_TEXT.fullmatch(value):
        raise StrawberryInputCoercionError(f'"{value}" is not a decimal such as "12.50".')
    return Decimal(value)


DecimalScalar = ScalarDefinition(
    name="Decimal",
    description=(
        'An exact decimal number written as a string, such as "12.50". Numbers are refused '
        "as input because a binary float cannot hold most decimal fractions exactly."
    ),
    specified_by_url=None,
    serialize=str,
    parse_value=_parse_decimal,
    parse_literal=None,
    origin=Decimal,
)


def decode_id(value: str, type_name: str) -> str | None:
    """The node id inside a global id of ``type_name``; None for anything else."""
    try:
        global_id = relay.GlobalID.from_id(value)
    except Exception:
        return None
    if global_id.type_name != type_name or not global_id.node_id:
        return None
    return global_id.node_id


def encode_id(type_name: str, node_id: str | int) -> str:
    return str(relay.GlobalID(type_name, str(node_id)))


def member_uuid(node_id: str) -> str | None:
    """Member ids are UUIDs; anything else names no member."""
    try:
        return str(uuid.UUID(node_id))
    except ValueError:
        return None


def decode_member_id(value: str) -> str | None:
    node_id = decode_id(value, "Member")
    return None if node_id is None else member_uuid(node_id)


def decode_int_id(value: str, type_name: str) -> int | None:
    node_id = decode_id(value, type_name)
    if node_id is None or not node_id.isdigit() or len(node_id) > 18:
        return None
    return int(node_id)


def identity_id(issuer: str, subject: str) -> str:
    """An opaque id for an (issuer, subject) pair."""
    raw = json.dumps([issuer, subject], separators=(",", ":"))
    return encode_id("Identity", base64.urlsafe_b64encode(raw.encode()).decode())


def decode_identity_id(value: str) -> tuple[str, str] | None:
    inner = decode_id(value, "Identity")
    if inner is None:
        return None
    try:
        pair = json.loads(base64.urlsafe_b64decode(inner.encode()))
    except (ValueError, UnicodeError):
        return None
    if isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair):
        return pair[0], pair[1]
    return None
