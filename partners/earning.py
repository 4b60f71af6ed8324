"""A partner's earning rules beyond points per amount: product multipliers, promotions,
sign-up and frequency bonuses, engagement activities, pending points, returns, referrals.
(Being written: see issue 5.)"""

from __future__ import annotations

from dataclasses import dataclass

from .reader import Reader

EARNING_KEYS = (
    "multipliers",
    "promotions",
    "signup_bonus",
    "frequency_bonus",
    "activities",
    "pending",
    "returns",
    "referral",
)


@dataclass(frozen=True)
class EarningRules:
    """TODO."""


def read_earning(reader: Reader) -> EarningRules:
    return EarningRules()
