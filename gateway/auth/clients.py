"""Partner and operator OAuth clients of the gateway's token endpoint.

A partner client is bound to one partner and holds a subset of ``PARTNER_SCOPES``; an
operator client (``partner`` NULL) holds ``operator``.

Only a hash of the secret is stored, as ``sha256$<hex of SHA-256(secret)>``. A fast, unsalted
hash is enough here, as it is for GitHub's tokens: the gateway generates every secret as 256
random bits (``new_secret``), so a leaked hash cannot be brute-forced or looked up in a
precomputed table, and a slow password hash (scrypt) would only hand anyone able to reach the
unauthenticated ``/oauth/token`` a cheap way to burn the server's CPU. A keyed HMAC would add
nothing the secret's entropy does not already give, and no server key is available when the
command line creates a client. A caller-chosen secret must therefore be as strong: at least
``MIN_SECRET`` characters, and random (only the documented demo clients, whose secrets are
public anyway, skip the length rule). ``authenticate`` computes one hash and one constant-time
comparison whether the client exists (against a decoy hash when it does not), is disabled, or
the secret is wrong, so its timing does not tell which client ids exist.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.auth.principal import OPERATOR_SCOPE, PARTNER_SCOPES
from gateway.auth.tables import clients

HASH_SCHEME = "sha256"
CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
MIN_SECRET, MAX_SECRET = 32, 256  # new_secret() gives 43 characters

_select_client = sa.select(clients).where(clients.c.client_id == sa.bindparam("client_id"))
_select_all = sa.select(clients).order_by(clients.c.client_id)
_select_ids = sa.select(clients.c.client_id).where(
    clients.c.client_id.in_(sa.bindparam("ids", expanding=True))
)
_insert_client = sa.insert(clients)
_set_secret = (
    sa.update(clients)
    .where(clients.c.client_id == sa.bindparam("id"))
    .values(secret_hash=sa.bindparam("secret_hash"), rotated_at=sa.bindparam("now"))
)
_disable = (
    sa.update(clients)
    .where(clients.c.client_id == sa.bindparam("id"), clients.c.disabled_at.is_(None))
    .values(disabled_at=sa.bindparam("now"))
)


class ClientError(ValueError):
    """Refused client input (unknown partner or scope, taken client id, ...); safe to show."""


class ClientExists(ClientError):
    """The client id is taken."""


@dataclass(frozen=True)
class ClientRecord:
    client_id: str
    partner: str | None  # None: an operator client
    scopes: frozenset[str]
    created_at: datetime
    rotated_at: datetime | None
    disabled_at: datetime | None

    @property
    def operator(self) -> bool:
        return self.partner is None


def _record(row: sa.Row[tuple[object, ...]]) -> ClientRecord:
    mapping = row._mapping
    return ClientRecord(
        client_id=mapping["client_id"],
        partner=mapping["partner"],
        scopes=frozenset(str(mapping["scopes"]).split()),
        created_at=mapping["created_at"],
        rotated_at=mapping["rotated_at"],
        disabled_at=mapping["disabled_at"],
    )


# Secrets


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def _digest(secret: str) -> bytes:
    # surrogatepass: a lone surrogate (never in a valid secret) must not raise here
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def hash_secret(secret: str) -> str:
    """The storable hash of ``secret``: ``sha256$<hex>`` (see the module's docstring)."""
    return f"{HASH_SCHEME}${_digest(secret).hex()}"


def verify_secret(secret: str, stored: str) -> bool:
    """Whether ``secret`` matches the ``stored`` hash, in constant time; False for a
    malformed hash."""
    actual = _digest(secret)
    scheme, _, digest = stored.partition("$")
    try:
        expected = bytes.fromhex(digest)
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected) and scheme == HASH_SCHEME


# A hash no secret is known for, checked against when the client does not exist.
_DECOY_HASH = hash_secret(new_secret())


# Validation


def _check_client_id(client_id: str) -> None:
    if not CLIENT_ID.fullmatch(client_id):
        raise ClientError(
            "a client id is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit"
        )


def _check_secret(secret: str, min_length: int = MIN_SECRET) -> None:
    if not min_length <= len(secret) <= MAX_SECRET or not secret.isprintable():
        raise ClientError(
            f"a client secret is {min_length} to {MAX_SECRET} printable characters "
            "(leave it out for a random one)"
        )


def _scopes_for(partner: str | None, scopes: Iterable[str] | None) -> frozenset[str]:
    wanted = None if scopes is None else frozenset(scopes)
    if partner is None:
        if wanted not in (None, frozenset({OPERATOR_SCOPE})):
            raise ClientError(f"an operator client has exactly the scope {OPERATOR_SCOPE!r}")
        return frozenset({OPERATOR_SCOPE})
    if wanted is None:
        return PARTNER_SCOPES
    if not wanted:
        raise ClientError("a partner client needs at least one scope")
    unknown = wanted - PARTNER_SCOPES
    if unknown:
        raise ClientError(
            f"unknown partner scope(s): {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(PARTNER_SCOPES))})"
        )
    return wanted


# Operations


async def create_client(
    engine: AsyncEngine,
    partner: str | None,
    scopes: Iterable[str] | None = None,
    client_id: str | None = None,
    secret: str | None = None,
    *,
    now: datetime,
    known_partners: Collection[str] | None = None,
) -> tuple[str, str]:
    """Create a client and return ``(client_id, secret)``; the secret is not kept.

    ``partner`` None makes an operator client. ``scopes`` None gives a partner client every
    partner scope. ``known_partners``, when given, are the coalition's slugs ``partner`` must
    be one of. ``secret`` None (the default, and all the command line offers) generates a
    random secret; a given one must be random too and at least ``MIN_SECRET`` characters,
    since only a fast hash of it is stored. Raises ``ClientError`` on refused input or a taken
    client id.
    """
    return await _create_client(
        engine, partner, scopes, client_id, secret, now=now, known_partners=known_partners
    )


async def _create_client(
    engine: AsyncEngine,
    partner: str | None,
    scopes: Iterable[str] | None,
    client_id: str | None,
    secret: str | None,
    *,
    now: datetime,
    known_partners: Collection[str] | None = None,
    min_secret: int = MIN_SECRET,
) -> tuple[str, str]:
    """``create_client``; ``min_secret`` lower for the demo clients' documented secrets only."""
    if partner is not None:
        if not SLUG.fullmatch(partner):
            raise ClientError(f"{partner!r} is not a partner slug")
        if known_partners is not None and partner not in known_partners:
            known = ", ".join(sorted(known_partners)) or "none"
            raise ClientError(f"unknown partner {partner!r} (the coalition has: {known})")
    granted = _scopes_for(partner, scopes)
    client_id = client_id or f"{partner or 'operator'}-{secrets.token_hex(4)}"
    _check_client_id(client_id)
    secret = new_secret() if secret is None else secret
    _check_secret(secret, min_secret)
    row = {
        "client_id": client_id,
        "partner": partner,
        "scopes": " ".join(sorted(granted)),
        "secret_hash": hash_secret(secret),
        "created_at": now,
        "rotated_at": None,
        "disabled_at": None,
    }
    try:
        async with engine.begin() as connection:
            await connection.execute(_insert_client, row)
    except IntegrityError:
        raise ClientExists(f"client id {client_id!r} is taken") from None
    return client_id, secret


async def rotate_secret(engine: AsyncEngine, client_id: str, now: datetime) -> str:
    """Give the client a new secret and return it; the old one stops working at once."""
    secret = new_secret()
    secret_hash = hash_secret(secret)
    async with engine.begin() as connection:
        result = await connection.execute(
            _set_secret, {"id": client_id, "secret_hash": secret_hash, "now": now}
        )
    if result.rowcount != 1:
        raise ClientError(f"unknown client {client_id!r}")
    return secret


async def disable_client(engine: AsyncEngine, client_id: str, now: datetime) -> ClientRecord:
    """Disable the client (kept for the record; a second call changes nothing).

    Its secret stops working at once; access tokens already issued stay valid until they
    expire (the verifier does not look clients up).
    """
    async with engine.begin() as connection:
        await connection.execute(_disable, {"id": client_id, "now": now})
        row = (await connection.execute(_select_client, {"client_id": client_id})).first()
    if row is None:
        raise ClientError(f"unknown client {client_id!r}")
    return _record(row)


async def list_clients(engine: AsyncEngine) -> list[ClientRecord]:
    """Every client, disabled ones included, by client id."""
    async with engine.connect() as connection:
        return [_record(row) for row in await connection.execute(_select_all)]


async def authenticate(engine: AsyncEngine, client_id: str, secret: str) -> ClientRecord | None:
    """The enabled client whose secret this is, else None (unknown, disabled, or wrong)."""
    row = None
    if CLIENT_ID.fullmatch(client_id) and len(secret) <= MAX_SECRET:
        async with engine.connect() as connection:
            row = (await connection.execute(_select_client, {"client_id": client_id})).first()
    stored = row.secret_hash if row is not None else _DECOY_HASH
    matches = verify_secret(secret[:MAX_SECRET], stored)
    if row is None or not matches or row.disabled_at is not None:
        return None
    return _record(row)


DEMO_OPERATOR_CLIENT = "operator-console"


def demo_clients(partners: Iterable[str]) -> dict[str, tuple[str | None, str]]:
    """The documented demo clients: client id -> (partner or None, secret)."""
    found: dict[str, tuple[str | None, str]] = {
        f"{slug}-app": (slug, f"{slug}-demo-secret") for slug in partners
    }
    found[DEMO_OPERATOR_CLIENT] = (None, "operator-demo-secret")
    return found


async def ensure_demo_clients(engine: AsyncEngine, partners: Iterable[str], now: datetime) -> None:
    """Create the demo clients that are missing; never for production (their secrets are
    public): ``<slug>-app`` / ``<slug>-demo-secret`` with every partner scope, and
    ``operator-console`` / ``operator-demo-secret``. Existing clients are left as they are.

    These secrets are shorter than ``MIN_SECRET``: being published in the README, no length
    would make them secret, so the demo clients alone skip that rule."""
    wanted = demo_clients(partners)
    async with engine.connect() as connection:
        existing = set((await connection.scalars(_select_ids, {"ids": list(wanted)})).all())
    for client_id, (partner, secret) in wanted.items():
        if client_id in existing:
            continue
        with contextlib.suppress(ClientExists):  # another process created it meanwhile
            await _create_client(engine, partner, None, client_id, secret, now=now, min_secret=1)
