"""Envelope encryption of the secrets the gateway keeps in its database (its token-signing
keys, partners' webhook secrets).

Each value is encrypted with a data key of its own (AES-256-GCM, a random 96-bit nonce);
the data key is wrapped by the master key (AES-256-GCM again), which never enters the
database: it comes from the environment or a mounted file (``gateway.api.settings``). A
sealed value reads::

    sealed:v1:<master id>:<wrapped data key>:<nonce and ciphertext>

(base64url, no padding). The master id is the first 16 hex digits of the master key's
SHA-256, so a value names the master that can open it without revealing it. ``context``
(for instance ``"signing_key:<kid>"``) is bound to both layers as associated data: a value
copied to another row does not open there.

Rotating the master key re-wraps the data keys only (``rewrap``); the ciphertexts stay.
A ``Sealer`` opens values under its current master and any previous ones it is given, so
processes keep working while ``coalition secrets rewrap`` moves every value to the new one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "sealed:v1:"
KEY_BYTES = 32
NONCE_BYTES = 12


class SealError(ValueError):
    """A sealed value that cannot be opened: unknown master key, tampered or malformed."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_master_key(text: str) -> bytes:
    """A master key from its text: 32 bytes in base64 (standard or url-safe) or 64 hex
    digits. Raises ``ValueError`` with a readable message otherwise."""
    value = text.strip()
    if len(value) == 2 * KEY_BYTES:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    try:
        standard = value.replace("-", "+").replace("_", "/").rstrip("=")
        key = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise ValueError(
            "a master key is 32 random bytes in base64 or hex "
            "(`coalition secrets new-master-key` prints one)"
        )
    return key


def new_master_key() -> str:
    """A fresh master key, as text for the environment or a key file."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def master_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


@dataclass(frozen=True)
class _Parts:
    master: str
    wrapped: bytes
    body: bytes


def _parts(sealed: str) -> _Parts:
    if not is_sealed(sealed):
        raise SealError("not a sealed value")
    fields = sealed[len(PREFIX) :].split(":")
    if len(fields) != 3:
        raise SealError("a malformed sealed value")
    try:
        wrapped, body = _unb64(fields[1]), _unb64(fields[2])
    except (binascii.Error, ValueError):
        raise SealError("a malformed sealed value") from None
    if len(wrapped) <= NONCE_BYTES or len(body) <= NONCE_BYTES:
        raise SealError("a malformed sealed value")
    return _Parts(fields[0], wrapped, body)


class Sealer:
    """Seals under ``current``; opens under ``current`` or any of ``previous``."""

    def __init__(self, current: bytes, previous: Sequence[bytes] = ()) -> None:
        for key in (current, *previous):
            if len(key) != KEY_BYTES:
                raise ValueError("a master key is 32 bytes")
        self.current_id = master_id(current)
        self._masters = {master_id(key): AESGCM(key) for key in (*previous, current)}

    def seal(self, plaintext: bytes, context: str) -> str:
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(NONCE_BYTES)
        body = nonce + AESGCM(data_key).encrypt(nonce, plaintext, context.encode())
        return self._format(self.current_id, self._wrap(data_key, context), body)

    def open(self, sealed: str, context: str) -> bytes:
        parts = _parts(sealed)
        data_key = self._unwrap(parts, context)
        nonce, ciphertext = parts.body[:NONCE_BYTES], parts.body[NONCE_BYTES:]
        try:
            return AESGCM(data_key).decrypt(nonce, ciphertext, context.encode())
        except InvalidTag:
            raise SealError("the sealed value was altered or belongs elsewhere") from None

    def needs_rewrap(self, sealed: str) -> bool:
        """True when ``sealed`` is not under the current master key."""
        return _parts(sealed).master != self.current_id

    def rewrap(self, sealed: str, context: str) -> str:
        """``sealed`` with its data key wrapped by the current master (the ciphertext is
        unchanged); raises ``SealError`` when no master this sealer knows opens it."""
        parts = _parts(sealed)
        if parts.master == self.current_id:
            return sealed
        data_key = self._unwrap(parts, context)
        return self._format(self.current_id, self._wrap(data_key, context), parts.body)

    def _wrap(self, data_key: bytes, context: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._masters[self.current_id].encrypt(
            nonce, data_key, b"data-key:" + context.encode()
        )

    def _unwrap(self, parts: _Parts, context: str) -> bytes:
        master = self._masters.get(parts.master)
        if master is None:
            raise SealError(f"sealed under master key {parts.master}, which is not configured")
        nonce, wrapped = parts.wrapped[:NONCE_BYTES], parts.wrapped[NONCE_BYTES:]
        try:
            return master.decrypt(nonce, wrapped, b"data-key:" + context.encode())
        except InvalidTag:
            raise SealError("the sealed value was altered or belongs elsewhere") from None

    @staticmethod
    def _format(master: str, wrapped: bytes, body: bytes) -> str:
        return f"{PREFIX}{master}:{_b64(wrapped)}:{_b64(body)}"
