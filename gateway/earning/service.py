"""The earning service: purchases and activities, pending points, returns and referrals.

Each call is one unit of work on top of the ledger service's posting machinery, so the
ledger's rules hold: idempotency keys, balanced legs, no hot rows. A purchase earns one EARN
transfer whose points are the sum of the rules' awards (see ``gateway/earning/rules.py``); the
awards are kept on the purchase so a retry answers with the same breakdown. The service is
made of its parts: ``purchases``, ``bulk``, ``pending``, ``returns``, ``debts``,
``activities`` and ``referrals``.
"""

from __future__ import annotations

from gateway.earning.activities import Activities
from gateway.earning.bulk import Bulk
from gateway.earning.pending import PendingPoints
from gateway.earning.purchases import TierLookup
from gateway.earning.returns import Returns
from gateway.ledger.service import LedgerService


class EarningService(Bulk, PendingPoints, Returns, Activities):
    def __init__(self, ledger: LedgerService, tiers: TierLookup | None = None) -> None:
        self.ledger = ledger
        self.tiers = tiers
