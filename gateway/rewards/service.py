"""The rewards catalogue and redeeming a reward with points of any pool.

A reward is priced in its partner's points. Paying from another pool converts just enough
points at the rate in force, in the same transaction as the redemption; the member keeps
any whole points the rounding gives beyond the price. Stock and the per-member limit are
conditional updates inside that transaction, so the last unit is sold once. A cross-brand
redemption records what the paying partner owes the delivering one.

The service is made of its parts: ``records`` (rewards, receipts and the rule of who may
redeem), ``catalogue`` and ``redemption``.
"""

from __future__ import annotations

from gateway.ledger.service import LedgerService
from gateway.rewards.redemption import Redemption
from gateway.tiers.service import TierService


class RewardService(Redemption):
    def __init__(self, ledger: LedgerService) -> None:
        self.ledger = ledger
        self.uow = ledger.uow
        self.tiers = TierService(ledger)
