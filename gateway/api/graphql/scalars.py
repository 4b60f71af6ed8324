"""Scalars and global ids."""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, NewType

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


EARLIEST = datetime(1000, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)  # exclusive; leaves room for any window added later


def _parse_datetime(value: object) -> datetime:
    """An ISO 8601 moment with a UTC offset, within [EARLIEST, LATEST), returned in UTC."""
    if not isinstance(value, str):
        raise StrawberryInputCoercionError(
            f"A DateTime is a string such as 2026-01-01T00:00:00Z, got {value!r}."
        )
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise StrawberryInputCoercionError(
            f"{value[:40]!r} is not an ISO 8601 date and time such as 2026-01-01T00:00:00Z."
        ) from None
    if moment.utcoffset() is None:
        raise StrawberryInputCoercionError(
            f"{value[:40]!r} needs a UTC offset, e.g. 2026-01-01T00:00:00Z."
        )
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise StrawberryInputCoercionError(
            f"{value[:40]!r} is outside the accepted range, from {EARLIEST.isoformat()} "
            f"to before {LATEST.isoformat()}."
        )
    return utc


DateTimeScalar = ScalarDefinition(
    name="DateTime",
    description=(
        "A moment as an ISO 8601 string with a UTC offset, such as 2026-01-01T00:00:00Z or "
        "2026-01-01T09:30:00+01:00. Inputs must lie from 1000-01-01T00:00:00Z to before "
        "9000-01-01T00:00:00Z; they are read in UTC."
    ),
    specified_by_url=None,
    serialize=datetime.isoformat,
    parse_value=_parse_datetime,
    parse_literal=None,
    origin=datetime,
)


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT64_TEXT = re.compile(r"^-?[0-9]{1,19}$")


def _parse_int64(value: object) -> int:
    """A JSON number or a string of digits, whole and within 64 bits."""
    if isinstance(value, bool):
        raise StrawberryInputCoercionError(f"Int64 values are whole numbers, got {value!r}.")
    if isinstance(value, float):
        if not value.is_integer():
            raise StrawberryInputCoercionError(f"Int64 values are whole numbers, got {value!r}.")
        raise StrawberryInputCoercionError(
            f"Int64 values are whole numbers without a fraction or exponent, got {value!r}; "
            "send large values as a string of digits to keep every digit."
        )
    if isinstance(value, str):
        if not INT64_TEXT.fullmatch(value):
            raise StrawberryInputCoercionError(
                f"{value[:40]!r} is not a whole number written in decimal digits."
            )
        value = int(value)
    if not isinstance(value, int):
        raise StrawberryInputCoercionError(f"Int64 values are whole numbers, got {value!r}.")
    if not INT64_MIN <= value <= INT64_MAX:
        raise StrawberryInputCoercionError(
            f"{value} is outside the 64-bit range [{INT64_MIN}, {INT64_MAX}]."
        )
    return value


def _serialize_int64(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Int64 cannot represent {value!r}")
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"Int64 cannot represent {value}: outside 64 bits")
    return value


Int64Scalar = ScalarDefinition(
    name="Int64",
    description=(
        "A whole number from -2^63 to 2^63-1: every quantity of points in this API "
        "(balances, amounts, figures, stock, limits, counts). It is written as a JSON "
        "number; past 2^53 (9,007,199,254,740,992) a JavaScript client needs a JSON "
        "parser that keeps big integers (e.g. json-bigint or the `reviver` context of "
        "JSON.parse). As input it also accepts a string of decimal digits, "
        '"-12" or "9007199254740993".'
    ),
    specified_by_url=None,
    serialize=_serialize_int64,
    parse_value=_parse_int64,
    parse_literal=None,
)

if TYPE_CHECKING:
    Int64 = int
else:
    Int64 = NewType("Int64", int)  # the schema maps it to Int64Scalar


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
    if node_id is None or not (node_id.isascii() and node_id.isdigit()) or len(node_id) > 18:
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
