"""Envelope encryption: what a sealed value opens under, and what it does not."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.kernel.sealing import (
    Sealer,
    SealError,
    is_sealed,
    master_id,
    new_master_key,
    parse_master_key,
)

OLD, NEW = parse_master_key(new_master_key()), parse_master_key(new_master_key())


@given(st.binary(max_size=4096), st.text(max_size=80))
def test_a_sealed_value_opens_under_its_master_and_context(plaintext: bytes, context: str) -> None:
    sealer = Sealer(OLD)
    sealed = sealer.seal(plaintext, context)
    assert is_sealed(sealed) and sealed.split(":")[2] == master_id(OLD)
    assert sealer.open(sealed, context) == plaintext
    if len(plaintext) >= 12:  # shorter, its base64 may turn up in random bytes by chance
        assert base64.urlsafe_b64encode(plaintext).decode().rstrip("=") not in sealed


def test_two_seals_of_the_same_secret_differ() -> None:
    sealer = Sealer(OLD)
    assert sealer.seal(b"secret", "c") != sealer.seal(b"secret", "c")


def test_a_value_does_not_open_in_another_row_or_altered() -> None:
    sealer = Sealer(OLD)
    sealed = sealer.seal(b"the private key", "signing_key:a")
    with pytest.raises(SealError, match="altered or belongs elsewhere"):
        sealer.open(sealed, "signing_key:b")
    prefix, body = sealed.rsplit(":", 1)
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    with pytest.raises(SealError):
        sealer.open(f"{prefix}:{flipped}", "signing_key:a")
    for malformed in ("sealed:v1:abc", "sealed:v1:a:b:c", "plain text", "sealed:v1:x:!!:??"):
        with pytest.raises(SealError):
            sealer.open(malformed, "signing_key:a")


def test_without_the_master_key_nothing_opens() -> None:
    sealed = Sealer(OLD).seal(b"whsec_secret", "webhook_secret:1")
    with pytest.raises(SealError, match=f"master key {master_id(OLD)}, which is not configured"):
        Sealer(NEW).open(sealed, "webhook_secret:1")


def test_rewrap_moves_a_value_to_the_new_master_and_keeps_its_ciphertext() -> None:
    sealed = Sealer(OLD).seal(b"whsec_secret", "webhook_secret:1")
    rotating = Sealer(NEW, [OLD])
    assert rotating.open(sealed, "webhook_secret:1") == b"whsec_secret"
    assert rotating.needs_rewrap(sealed)
    moved = rotating.rewrap(sealed, "webhook_secret:1")
    assert not rotating.needs_rewrap(moved) and rotating.rewrap(moved, "webhook_secret:1") == moved
    assert moved.rsplit(":", 1)[1] == sealed.rsplit(":", 1)[1]  # only the data key re-wrapped
    assert Sealer(NEW).open(moved, "webhook_secret:1") == b"whsec_secret"
    with pytest.raises(SealError):
        Sealer(OLD).open(moved, "webhook_secret:1")
    with pytest.raises(SealError):
        rotating.rewrap(sealed, "webhook_secret:2")


def test_master_keys_are_read_in_base64_or_hex() -> None:
    raw = bytes(range(32))
    for text in (
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        raw.hex(),
        f"  {raw.hex()}\n",
    ):
        assert parse_master_key(text) == raw
    for bad in ("", "short", base64.b64encode(raw[:16]).decode(), "z" * 64, "é" * 44):
        with pytest.raises(ValueError, match="32 random bytes"):
            parse_master_key(bad)
