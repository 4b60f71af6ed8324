"""Point expiry: what expires when, the job that posts it to breakage, and the breakage report.

Each partner sets a policy in its ``[expiry]`` table (see ``partners/expiry.py``): points
expire N months after they were earned, or all of a member's points at the partner expire
after N months without any transfer of the member anywhere in the coalition, or never.
Pools kept in a partner's own system have no wallets here and are left alone.

The rules of what expires when (oldest first, without lot tables) are in
``gateway/expiry/schedule.py``; the service is made of ``schedule``, ``job`` and ``report``.

**The job** (``expire_due``) looks at the wallets with points at partners whose points
expire, first with one cheap query per page of wallets, then, for each wallet that looks
due, in a transaction that locks the member (as every posting does) and the wallet,
computes what is due again and posts one EXPIRY transfer (wallet to the pool's BREAKAGE).
Its idempotency key is derived from the member, the pool, the expiry moment of the newest
points it expires and how many expiries the wallet had before, so a second run, a
concurrent one or one in another process posts nothing new: it either waits for the lock
and then finds nothing due, or claims the same key and gets the first posting back.
"""

from __future__ import annotations

from gateway.expiry.job import Job
from gateway.expiry.report import Report
from gateway.ledger.service import LedgerService


class ExpiryService(Job, Report):
    def __init__(self, ledger: LedgerService) -> None:
        self.ledger = ledger
        self.uow = ledger.uow
