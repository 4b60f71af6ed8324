"""Members' data rights: export everything held about a member, and erase them (the
rules: erasure.py; the document: export.py). Each is one unit of work: an export reads
one snapshot, an erasure is one transaction (all of it, or nothing)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.auth.principal import Principal
from gateway.earning.personal import forfeit_pending, scrub_purchases
from gateway.events import outbox
from gateway.events.personal import drop_gift_messages, replace_customer_ids
from gateway.holds.personal import release_open
from gateway.imports.personal import clear_rejected_keys, scrub_messages
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.ledger import locks
from gateway.ledger import personal as ledger
from gateway.ledger.personal import ERASED
from gateway.ledger.rules import Leg, TransferKind
from gateway.ledger.service import LedgerService
from gateway.members.personal import end_sessions, erase_identities
from gateway.privacy import export, store
from gateway.privacy.erasure import (
    REASON,
    Erasure,
    check_may_erase,
    pending_forfeit,
    wallet_forfeit,
)
from gateway.remote.personal import partners_of, pending_at, scrub_operations
from gateway.webhooks.personal import clear_answers


def _unknown() -> DomainError:
    return DomainError(ErrorCode.UNKNOWN_MEMBER, "No such member.", ("member_id",))


class PrivacyService:
    def __init__(
        self, ledger: LedgerService, extra_sections: Mapping[str, export.Section] | None = None
    ) -> None:
        """``extra_sections``: the export's sections other packages own, by name (the
        composition root registers them, e.g. ``auditEntries``)."""
        self.ledger = ledger
        self.sections = dict(extra_sections or {})

    async def export(self, member_id: str, limit: int | None = export.MAX_ROWS) -> dict[str, Any]:
        """Everything held about the member (UNKNOWN_MEMBER for an unknown id)."""
        now = self.ledger.clock()

        async def work(connection: AsyncConnection) -> dict[str, Any] | None:
            return await export.document(connection, member_id, now, limit, self.sections)

        found = await self.ledger.uow.read(work)
        if found is None:
            raise _unknown()
        return found

    async def erase(self, member_id: str, principal: Principal) -> Erasure:
        """Erase the member (and the members merged into it): see erasure.py for what is
        removed, pseudonymised and kept. MEMBER_ERASED when it was erased already."""
        check_may_erase(principal, member_id, self.ledger.clock())
        kernel = self.ledger.kernel

        async def work(connection: AsyncConnection) -> Erasure:
            live = await locks.live_member(connection, member_id, locks.Lock.EXCLUSIVE)
            if live is None:
                raise _unknown()
            locks.check_not_erased(connection, live, ("member_id",))
            ids = await ledger.member_ids(connection, live)
            waiting = await pending_at(connection, ids)
            if waiting:
                raise DomainError(
                    ErrorCode.PARTNER_UNAVAILABLE,
                    f"An operation of this member at {', '.join(waiting)} is still pending "
                    "(its outcome is not known yet): erase once it has completed.",
                    ("member_id",),
                )
            now = kernel.clock()
            released = await release_open(connection, kernel, live, ids)
            forfeited: dict[str, int] = {}

            async def forfeit(pool: str, points: int, what: str, legs: list[Leg]) -> None:
                claim = kernel.claim(f"erase:{pool}", f"{live}:{what}", {"member": live})
                values = {
                    "kind": TransferKind.EXPIRY.value,
                    "partner": pool,
                    "points": points,
                    "reason": REASON,
                }
                await kernel.post(connection, claim, values, live, legs)
                forfeited[pool] = forfeited.get(pool, 0) + points

            # The points in the gateway's own pools (a remote pool's are the partner's).
            coalition = self.ledger.coalition
            local = [slug for slug in sorted(coalition.partners) if not coalition.is_remote(slug)]
            for pool, points in sorted((await forfeit_pending(connection, ids, local)).items()):
                await forfeit(pool, points, "pending", pending_forfeit(pool, points))
            for pool, points in (await ledger.wallet_balances(connection, live)).items():
                if points > 0 and pool in local:
                    await forfeit(pool, points, "wallet", wallet_forfeit(pool, points))
            replaced = await ledger.pseudonymise_enrolments(connection, ids)
            identities = await erase_identities(connection, ids, now, ERASED)
            await end_sessions(connection, ids)
            await clear_rejected_keys(connection, await ledger.earn_keys(connection, ids))
            for partner, customer_id in sorted(replaced):
                await scrub_messages(connection, partner, {customer_id})
            rekeyed = await ledger.rekey_transfers(connection, ids)
            await drop_gift_messages(connection, await ledger.clear_gift_messages(connection, ids))
            await scrub_purchases(connection, ids, ERASED)
            await scrub_operations(connection, ids, ERASED)
            await clear_answers(connection, ids)
            await replace_customer_ids(connection, ids, replaced, ledger.token())
            await ledger.mark_erased(connection, ids, now)
            # Every partner that heard of the member: enrolled there, a wallet in its pool
            # (a conversion, a gift), or operations in its own system.
            told = {partner for partner, _ in replaced}
            told |= await ledger.wallet_pools(connection, ids)
            told |= await partners_of(connection, ids)
            partners: list[str | None] = [*sorted(told)]
            events = [outbox.erased(live, partner, now) for partner in partners or [None]]
            await outbox.append(connection, events)
            erasure = Erasure(
                member_id=live,
                erased_at=now,
                erased_by=principal.actor,
                merged_members=tuple(ids[1:]),
                released_holds=released,
                forfeited=forfeited,
                identities=identities,
                enrolments=len(replaced),
                transfers_rekeyed=rekeyed,
            )
            await store.record(connection, erasure)
            return erasure

        return await self.ledger.uow.write(work)
