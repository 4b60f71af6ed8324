"""The gateway's own token-signing keys (RS256), shared by every worker through the database.

The newest key without ``retired_at`` signs. ``rotate()`` adds a key and retires the others;
a retired key stays published (in the JWKS, and accepted by ``key_for``) until
``retired_at + token_lifetime + 60 s``, so every token it signed expires before it goes.

Each process keeps the keys in memory and picks up another process's rotation (or the
CLI's) on a reload: when a token names an unknown ``kid`` (at most once per 10 s, so random
kids cannot make every request query the database), when serving the JWKS (every 10 s), and
when signing (every 30 s). So a worker may sign with a key just retired elsewhere for up to
30 s (the 60 s publication margin covers that), and a worker that reloaded just before a
rotation may refuse tokens under the new key for up to 10 s.

Private keys are stored sealed (``gateway.kernel.sealing``: envelope encryption under the
master key from the environment, bound to the key's ``kid``): reading ``signing_keys``
without the master key gives no key, and a key in clear text is never loaded, so whoever can
write the table cannot slip in a key of their own. Keys an older version stored in clear
text are sealed by ``coalition secrets rewrap`` (in development, when a process starts).
Known gap: a process holds the keys in clear in its memory; moving signing to a KMS or HSM
would keep them out of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from joserfc.jwk import RSAKey
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.auth.tables import signing_keys
from gateway.kernel.schema import Moment
from gateway.kernel.sealing import Sealer, SealError, is_sealed

log = logging.getLogger("gateway.auth")

ALGORITHM = "RS256"
KEY_BITS = 2048
PUBLICATION_MARGIN = timedelta(seconds=60)
UNKNOWN_KID_RELOAD = timedelta(seconds=10)
JWKS_RELOAD = timedelta(seconds=10)
CURRENT_RELOAD = timedelta(seconds=30)

_select_published = (
    sa.select(signing_keys)
    .where(
        sa.or_(
            signing_keys.c.retired_at.is_(None),
            signing_keys.c.retired_at > sa.bindparam("cutoff"),
        )
    )
    .order_by(signing_keys.c.created_at, signing_keys.c.kid)
)
_select_all = sa.select(signing_keys).order_by(signing_keys.c.created_at, signing_keys.c.kid)
_insert_key = sa.insert(signing_keys)
# INSERT ... SELECT ... WHERE NOT EXISTS: one statement, so SQLite runs it under its write lock.
_insert_first_key = sa.insert(signing_keys).from_select(
    ["kid", "private_jwk", "created_at"],
    sa.select(
        sa.bindparam("kid", type_=sa.String(64)),
        sa.bindparam("private_jwk", type_=sa.Text()),
        sa.bindparam("created_at", type_=Moment()),
    ).where(~sa.exists().where(signing_keys.c.retired_at.is_(None))),
)
_FIRST_KEY_LOCK = 727275  # pg_advisory_xact_lock id; 727274 is the migrations'
_retire_others = (
    sa.update(signing_keys)
    .where(signing_keys.c.retired_at.is_(None), signing_keys.c.kid != sa.bindparam("new_kid"))
    .values(retired_at=sa.bindparam("now"))
)


@dataclass(frozen=True)
class SigningKeyInfo:
    """A key as ``coalition keys list`` shows it; never the private part."""

    kid: str
    created_at: datetime
    retired_at: datetime | None
    published_until: datetime | None  # None while the key is not retired
    current: bool


@dataclass(frozen=True)
class _Loaded:
    kid: str
    private: RSAKey
    public: RSAKey
    created_at: datetime
    retired_at: datetime | None


def _generate(kid: str) -> RSAKey:
    parameters: Any = {"kid": kid, "use": "sig", "alg": ALGORITHM}
    return RSAKey.generate_key(KEY_BITS, parameters=parameters)


def _public_of(key: RSAKey) -> RSAKey:
    return RSAKey.import_key(key.as_dict(private=False))


def _import(private_jwk: str) -> tuple[RSAKey, RSAKey]:
    private = RSAKey.import_key(json.loads(private_jwk))
    return private, _public_of(private)


def context(kid: str) -> str:
    """What a key's sealed value is bound to: it opens in its own row only."""
    return f"signing_key:{kid}"


_select_stored = sa.select(signing_keys.c.kid, signing_keys.c.private_jwk)
_replace_stored = (
    sa.update(signing_keys)
    .where(
        signing_keys.c.kid == sa.bindparam("key"), signing_keys.c.private_jwk == sa.bindparam("was")
    )
    .values(private_jwk=sa.bindparam("value"))
)


async def stored(connection: AsyncConnection) -> list[tuple[str, str, str]]:
    """Every key's (kid, sealing context, stored value): sealed, or clear text written by a
    version before sealing (``coalition secrets rewrap`` seals those)."""
    rows = (await connection.execute(_select_stored)).all()
    return [(row.kid, context(row.kid), row.private_jwk) for row in rows]


async def replace(connection: AsyncConnection, kid: str, was: str, value: str) -> bool:
    """Store ``value`` for ``kid`` if its stored value is still ``was`` (False otherwise)."""
    result = await connection.execute(_replace_stored, {"key": kid, "was": was, "value": value})
    return result.rowcount == 1


class KeyStore:
    """The signing keys, cached per process; all times come from the injected clock."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Callable[[], datetime],
        token_lifetime: int,
        sealer: Sealer,
        seal_clear_text_at_start: bool = False,
    ) -> None:
        self.engine = engine
        self.sealer = sealer
        self.seal_at_start = seal_clear_text_at_start
        self.clock = clock
        self.token_lifetime = token_lifetime
        self._keys: dict[str, _Loaded] = {}
        self._loaded_at: datetime | None = None
        self._lock = asyncio.Lock()

    @property
    def _window(self) -> timedelta:
        """How long a retired key stays published."""
        return timedelta(seconds=self.token_lifetime) + PUBLICATION_MARGIN

    async def start(self) -> None:
        """Load the keys, creating the first one if there is none to sign with.

        Processes starting at once create one key between them: the insert is conditional
        on there being no unretired key, and PostgreSQL serializes it with an advisory lock.
        (Were two created anyway, both would be published and the newest would sign.)
        A key that does not open stops the start (``SealError``): one sealed under a master
        key this process does not have, or one in clear text (an older version's, sealed by
        ``coalition secrets rewrap``; or someone's who could write to the table: clear text is
        never trusted). With ``seal_clear_text_at_start`` (development) they are sealed first.
        """
        if self.seal_at_start:
            await self.seal_clear_text()
        await self._ensure_current()

    async def _ensure_current(self) -> None:
        await self._reload()
        if self._current() is None:
            await self._insert_new(retire_others=False, only_if_none=True)
            await self._reload()

    async def rotate(self) -> str:
        """Create a signing key, retire every other one, and return the new ``kid``.
        Refused (``SealError``) when this process cannot open the keys already stored: its
        master key is not the one the others use, and they could not open the new key."""
        await self._reload()
        kid = await self._insert_new(retire_others=True)
        assert kid is not None
        await self._reload()
        return kid

    async def current(self) -> tuple[str, RSAKey]:
        """The ``kid`` and private key to sign with now (re-read at most every 30 s)."""
        await self._reload_if_older_than(CURRENT_RELOAD)
        loaded = self._current()
        if loaded is None:  # every key retired by hand: make one rather than fail
            await self._ensure_current()
            loaded = self._current()
            assert loaded is not None
        return loaded.kid, loaded.private

    async def key_for(self, kid: str) -> RSAKey | None:
        """The public key for ``kid`` while it is published, else None.

        An unknown ``kid`` reloads from the database at most once per 10 s.
        """
        loaded = self._keys.get(kid)
        if loaded is None:
            await self._reload_if_older_than(UNKNOWN_KID_RELOAD)
            loaded = self._keys.get(kid)
        if loaded is None or not self._published(loaded, self.clock()):
            return None
        return loaded.public

    async def public_jwks(self) -> dict[str, Any]:
        """``{"keys": [...]}``: the public JWKs (kid, use=sig, alg=RS256) now published."""
        await self._reload_if_older_than(JWKS_RELOAD)
        now = self.clock()
        return {
            "keys": [
                loaded.public.as_dict(private=False)
                for loaded in self._keys.values()
                if self._published(loaded, now)
            ]
        }

    async def seal_clear_text(self) -> int:
        """Seal the keys an older version stored in clear text; how many it sealed."""
        sealed = 0
        async with self.engine.begin() as connection:
            for kid, bound_to, value in await stored(connection):
                if not is_sealed(value):
                    value_sealed = self.sealer.seal(value.encode(), bound_to)
                    sealed += await replace(connection, kid, value, value_sealed)
        return sealed

    def _open(self, kid: str, value: str) -> str:
        if not is_sealed(value):
            raise SealError(
                f"signing key {kid} is stored in clear text: seal it with `coalition secrets "
                "rewrap` (keys in clear text are never used)"
            )
        return self.sealer.open(value, context(kid)).decode()

    async def describe(self) -> list[SigningKeyInfo]:
        """Every key in the database, oldest first, read now (for the CLI)."""
        async with self.engine.connect() as connection:
            rows = (await connection.execute(_select_all)).all()
        current = max(
            (row for row in rows if row.retired_at is None),
            key=lambda row: (row.created_at, row.kid),
            default=None,
        )
        return [
            SigningKeyInfo(
                kid=row.kid,
                created_at=row.created_at,
                retired_at=row.retired_at,
                published_until=None if row.retired_at is None else row.retired_at + self._window,
                current=current is not None and row.kid == current.kid,
            )
            for row in rows
        ]

    # Internals

    def _published(self, loaded: _Loaded, now: datetime) -> bool:
        return loaded.retired_at is None or now < loaded.retired_at + self._window

    def _current(self) -> _Loaded | None:
        return max(
            (loaded for loaded in self._keys.values() if loaded.retired_at is None),
            key=lambda loaded: (loaded.created_at, loaded.kid),
            default=None,
        )

    async def _insert_new(self, retire_others: bool, only_if_none: bool = False) -> str | None:
        """Insert a new key and return its kid; None if ``only_if_none`` and one exists."""
        kid = secrets.token_urlsafe(16)
        key = await asyncio.to_thread(_generate, kid)
        now = self.clock()
        clear = json.dumps(key.as_dict(private=True)).encode()
        row = {"kid": kid, "private_jwk": self.sealer.seal(clear, context(kid)), "created_at": now}
        async with self.engine.begin() as connection:
            if only_if_none:
                if connection.dialect.name == "postgresql":
                    await connection.execute(
                        sa.text(f"SELECT pg_advisory_xact_lock({_FIRST_KEY_LOCK})")
                    )
                inserted = (await connection.execute(_insert_first_key, row)).rowcount == 1
                if not inserted:
                    return None
            else:
                await connection.execute(_insert_key, row)
            if retire_others:
                await connection.execute(_retire_others, {"new_kid": kid, "now": now})
        self._keys[kid] = _Loaded(kid, key, await asyncio.to_thread(_public_of, key), now, None)
        return kid

    def _stale(self, age: timedelta) -> bool:
        now = self.clock()
        loaded_at = self._loaded_at
        return loaded_at is None or now < loaded_at or now - loaded_at >= age

    async def _reload_if_older_than(self, age: timedelta) -> None:
        if self._stale(age):
            await self._reload(age)

    async def _reload(self, age: timedelta | None = None) -> None:
        """Re-read the published keys; with ``age``, only if no one did within ``age`` (so
        callers queued on the lock behind a reload do not repeat it). A key that does not
        open under this process's master keys stops a first load and a rotation
        (``SealError``); later reloads leave it out, logged, and go on with the others."""
        async with self._lock:
            if age is not None and not self._stale(age):
                return
            now = self.clock()
            async with self.engine.connect() as connection:
                result = await connection.execute(_select_published, {"cutoff": now - self._window})
                rows = result.all()
            keys: dict[str, _Loaded] = {}
            for row in rows:
                known = self._keys.get(row.kid)
                if known is None:
                    try:
                        clear = self._open(row.kid, row.private_jwk)
                    except SealError:
                        if age is None:
                            raise
                        log.error("signing key %s does not open under the master keys", row.kid)
                        continue
                    private, public = await asyncio.to_thread(_import, clear)
                else:
                    private, public = known.private, known.public
                keys[row.kid] = _Loaded(row.kid, private, public, row.created_at, row.retired_at)
            self._keys = keys
            self._loaded_at = now
