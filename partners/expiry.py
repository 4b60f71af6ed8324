"""Point expiry and gifting limits per partner: ``[expiry]`` and ``[gifting]`` (stubs to fill)."""

from __future__ import annotations

from dataclasses import dataclass

from .reader import Reader


@dataclass(frozen=True)
class ExpiryPolicy:
    """How a partner's points expire. TODO: fields."""


def read_expiry(reader: Reader) -> ExpiryPolicy:
    return ExpiryPolicy()


@dataclass(frozen=True)
class GiftingLimits:
    """How much a member may gift in a partner's pool. TODO: fields."""


def read_gifting(reader: Reader) -> GiftingLimits:
    return GiftingLimits()
