"""Challenges and badges: progress derived from the ledger, awards once per member and period.

Progress is never stored: it is counted from the member's earn transfers (their own and
those of members merged into them) within the challenge's current calendar period (UTC).
An earn reversed in full does not count; a partial reversal counts what is left. Bonus
points are earn transfers themselves, kept out of every count.

An award is one row of ``challenge_awards``, unique per (challenge, member, period), written
in the same transaction as its bonus: an EARN transfer at the bonus partner whose
idempotency key is derived from (challenge, member, period). However many evaluations run
at once (after every earn, from the job, in several processes), a badge and its bonus are
given once.
"""

from __future__ import annotations

import asyncio

from gateway.challenges.awarding import Awarding
from gateway.challenges.definitions import Definitions
from gateway.ledger.service import LedgerService


class ChallengeService(Definitions, Awarding):
    """Challenges and badges, made of its parts: ``sync`` (the configured challenges),
    ``definitions``, ``standings`` (progress and badges) and ``awarding``."""

    def __init__(self, ledger: LedgerService) -> None:
        self.ledger = ledger
        self.uow = ledger.uow
        self._synced_with: object = None
        self._sync_lock = asyncio.Lock()
