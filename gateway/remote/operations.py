"""Earn, redeem and conversion at partners whose points live in their own systems.

Each such call is a saga recorded in ``remote_operations`` before the partner is called:

- **earn / redeem** forward one credit or debit; the gateway's own posting (issuance or
  redemption against the pool's REMOTE account) follows once the partner has answered.
- **hosted -> remote conversion**: the member's wallet is debited first (compensatable), then
  the partner is credited (the pivot). A refusal there compensates: the local conversion is
  reversed and the points are back in the wallet.
- **remote -> hosted conversion**: the partner is debited first (the pivot), then the
  gateway's wallet is credited. That posting cannot be refused (the quote is fixed and a
  wallet can always be credited), so recovery after the pivot only goes forward.

The remote step carries one idempotency key per operation. Its outcome is either known (a
transaction, or a refusal: nothing happened there) or unknown (timeout, 5xx, an answer we
cannot trust, a lookup that found nothing yet). An unknown outcome never compensates and
never moves on: the operation stays ``pending`` and is driven again with the same key, by
the caller's retry or by ``resume_due`` (a job), until the partner's answer is definite.

The saga is made of its parts: ``record`` (the operation and its store), ``running``,
``resuming`` (the job), ``balances`` and ``pieces``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from gateway.remote.balances import Balances
from gateway.remote.resuming import Resuming
from partners.remote.adapter import RemotePool

if TYPE_CHECKING:
    from gateway.ledger.service import LedgerService


def connect_pools(ledger: LedgerService, pools: Mapping[str, RemotePool]) -> RemoteOperations:
    """The remote pools' sagas, plugged into ``ledger`` (its earn, redeem and conversion at a
    remote partner go through them)."""
    remote = RemoteOperations(ledger, pools)
    ledger.remote = remote
    return remote


class RemoteOperations(Resuming, Balances):
    """Runs and resumes the sagas; ``pools`` holds an adapter per remote partner."""

    def __init__(self, ledger: LedgerService, pools: Mapping[str, RemotePool]) -> None:
        self.ledger = ledger
        self.pools = dict(pools)

    def check_configured(self) -> None:
        missing = [
            slug
            for slug, partner in self.ledger.coalition.partners.items()
            if partner.pool.remote and slug not in self.pools
        ]
        if missing:
            raise RuntimeError(f"no pool adapter for the remote pools of {', '.join(missing)}")

    async def aclose(self) -> None:
        for pool in self.pools.values():
            await pool.aclose()
