"""Members' identities: sign-in, linking (and the merge it may prove), unlinking, sign-in
flows and browser sessions. Free of HTTP: the routes and GraphQL call these.

An identity is an (issuer, subject) pair the member proved by signing in; e-mail
addresses are never used to find, link or merge members.
"""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.events import outbox
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.kernel.unit_of_work import Retry
from gateway.ledger import locks
from gateway.ledger import store as repository
from gateway.ledger.locks import Lock
from gateway.ledger.service import LedgerService
from gateway.members import store
from gateway.members.records import FLOW_USED, FlowUse, Linked, Proof, SignedIn, StartedFlow
from gateway.members.rules import (
    FLOW_LIFETIME,
    LINK,
    LINK_NONCE_LIFETIME,
    SESSION_RETENTION,
    SIGN_IN,
    digest,
)
from gateway.members.store import FlowRecord, IdentityRecord, SessionRecord


class IdentityService:
    def __init__(self, ledger: LedgerService, clock: Callable[[], datetime]) -> None:
        self.ledger = ledger
        self.uow = ledger.uow
        self.clock = clock

    # Signing in and linking

    async def _enrol_if_new(
        self, connection: AsyncConnection, proof: Proof, member_id: str
    ) -> str | None:
        """Record the partner's customer id for the member; the member who holds it
        already, if that is someone else."""
        if proof.customer_id is None or proof.provider not in self.ledger.coalition.partners:
            return None
        enrolment = await repository.enrolment(connection, proof.provider, proof.customer_id)
        if enrolment is None:
            now = self.clock()
            if await repository.claim_enrolment(
                connection, proof.provider, proof.customer_id, member_id, now
            ):
                joined = outbox.enrolled(
                    member_id, proof.provider, proof.customer_id, now, "sign-in"
                )
                await outbox.append(connection, [joined])
            return None
        return enrolment.member_id if enrolment.member_id != member_id else None

    async def sign_in(self, proof: Proof) -> SignedIn:
        """The member this identity belongs to; a first sign-in attaches it to the member
        the partner enrolled with the customer id in the token, or creates a member."""

        async def work(connection: AsyncConnection) -> SignedIn:
            found = await store.identity(connection, proof.issuer, proof.subject)
            if found is not None and found.active:
                # A read: signing in changes nothing, so it waits for no posting.
                members = await repository.members_by_id(connection, [found.member_id])
                return SignedIn(members[found.member_id].id, created=False)
            now = self.clock()
            member_id = None
            if found is None and proof.customer_id:
                member_id = await self._enrolled_member(connection, proof)
            if member_id is not None:
                created = False
            else:
                # A new identity, or one its member unlinked: that member is not found
                # again through the customer id, so unlinking holds.
                member_id, created = str(uuid.uuid4()), True
                await repository.insert_member(connection, member_id, now)
                if found is None:
                    await self._enrol_if_new(connection, proof, member_id)
            if found is None:
                attached = await store.claim_identity(
                    connection, proof.issuer, proof.subject, member_id, proof.provider, SIGN_IN, now
                )
            else:
                attached = await store.reattach_identity(
                    connection, proof.issuer, proof.subject, member_id, SIGN_IN, now
                )
            if not attached:
                raise Retry  # a concurrent sign-in attached it first: find theirs
            return SignedIn(member_id, created)

        return await self.uow.write(work)

    async def _enrolled_member(self, connection: AsyncConnection, proof: Proof) -> str | None:
        """The member the token's customer id is enrolled with (locked), if any."""
        enrolled = await self._enrolment_owner(connection, proof)
        live = await locks.live_member(connection, enrolled) if enrolled else None
        if live is not None and live in locks.erased(connection):
            raise Retry  # erased meanwhile: its enrolment no longer has this customer id
        return live

    async def _enrolment_owner(self, connection: AsyncConnection, proof: Proof) -> str | None:
        if proof.customer_id is None or proof.provider not in self.ledger.coalition.partners:
            return None
        enrolment = await repository.enrolment(connection, proof.provider, proof.customer_id)
        return enrolment.member_id if enrolment else None

    async def link(self, member_id: str, proof: Proof, flow: FlowUse | None = None) -> Linked:
        """Attach a freshly proven identity to the signed-in member. When it belongs to
        another member (or, for an identity never linked before, its customer id does),
        the same person has now proven both: the other member is merged into this one.
        ``flow``: the sign-in flow or link nonce this link uses up (only if it succeeds)."""

        async def work(connection: AsyncConnection) -> Linked:
            # Who is involved, read without locks; then all of them locked at once, in the
            # one order (see locks.lock_members), and the reading checked.
            found = await store.identity(connection, proof.issuer, proof.subject)
            other = None
            if found is None:
                other = await self._enrolment_owner(connection, proof)
            elif found.active:
                other = found.member_id
            live = await self._lock_for_link(connection, member_id, other)
            if await store.identity(connection, proof.issuer, proof.subject) != found:
                raise Retry  # linked or unlinked meanwhile: decide again
            survivor = live.get(member_id)
            if survivor is None:
                raise DomainError(ErrorCode.UNKNOWN_MEMBER, "No such member.")
            if flow is not None and not await self._use(connection, flow):
                raise DomainError(ErrorCode.LINK_INVALID, FLOW_USED, ("id_token",))
            now = self.clock()
            owner = live.get(other) if other is not None else None
            if found is None:
                if not await store.claim_identity(
                    connection, proof.issuer, proof.subject, survivor, proof.provider, LINK, now
                ):
                    raise Retry  # a concurrent link or sign-in attached it first
                enrolled = await self._enrol_if_new(connection, proof, survivor)
                if enrolled != other and (enrolled is not None or owner != survivor):
                    raise Retry  # enrolled meanwhile: decide again
            elif not found.active and not await store.reattach_identity(
                connection, proof.issuer, proof.subject, survivor, LINK, now
            ):
                raise Retry  # reattached meanwhile
            merged: list[str] = []
            if owner is not None and owner != survivor:
                await self.ledger.absorb_wallets(connection, owner, survivor)
                await store.retire_member(connection, owner, survivor, now)
                merged.append(owner)
            already = found is not None and found.active and owner == survivor
            return Linked(survivor, tuple(merged), already)

        return await self.uow.write(work)

    @staticmethod
    async def _lock_for_link(
        connection: AsyncConnection, member_id: str, other: str | None
    ) -> dict[str, str]:
        """Lock the linking member and ``other`` (the identity's or customer id's member),
        with everything a merge of the other into the linker rewrites; each id's member."""
        ids = [member_id] if other is None else [member_id, other]
        seen = await repository.members_by_id(connection, ids)
        survivor, owner = seen.get(member_id), seen.get(other) if other else None
        merging = survivor is not None and owner is not None and owner.id != survivor.id
        retiring = [owner.id] if merging and owner is not None else []
        # An erased member is refused (MEMBER_ERASED): nothing is linked to it again.
        live = await locks.lock_members(connection, ids, Lock.EXCLUSIVE, retiring, True)
        if survivor is not None and live.get(member_id) != survivor.id:
            raise Retry  # merged meanwhile
        if owner is not None and other is not None and live.get(other) != owner.id:
            raise Retry
        return live

    async def _use(self, connection: AsyncConnection, flow: FlowUse) -> bool:
        used = await store.consume_flow(
            connection, digest(flow.secret), flow.purposes, self.clock(), flow.member_id
        )
        return used is not None

    async def unlink(self, member_id: str, issuer: str, subject: str) -> None:
        async def work(connection: AsyncConnection) -> None:
            await locks.lock_members(connection, [member_id], Lock.EXCLUSIVE)
            held = (await store.identities_of(connection, [member_id])).get(member_id, [])
            if not any(i.issuer == issuer and i.subject == subject for i in held):
                raise DomainError(
                    ErrorCode.UNKNOWN_IDENTITY,
                    "That identity is not linked to you.",
                    ("identity_id",),
                )
            if len(held) == 1:
                raise DomainError(
                    ErrorCode.LAST_IDENTITY,
                    "This is your only sign-in; link another before removing it.",
                    ("identity_id",),
                )
            await store.unlink_identity(connection, issuer, subject, member_id, self.clock())

        await self.uow.write(work)

    async def identities(self, member_ids: Sequence[str]) -> dict[str, list[IdentityRecord]]:
        return await self.uow.read(lambda c: store.identities_of(c, member_ids))

    async def partners_of(self, member_ids: Sequence[str]) -> dict[str, set[str]]:
        return await self.uow.read(lambda c: store.partners_of(c, member_ids))

    async def linked(self, issuer: str, subject: str) -> IdentityRecord | None:
        """The linked identity, with the member it belongs to now (after any merge)."""

        async def work(connection: AsyncConnection) -> IdentityRecord | None:
            found = await store.identity(connection, issuer, subject)
            if found is None or not found.active:
                return None
            members = await repository.members_by_id(connection, [found.member_id])
            if found.member_id not in members or members[found.member_id].erased_at is not None:
                return None
            return dataclasses.replace(found, member_id=members[found.member_id].id)

        return await self.uow.read(work)

    # Flows: browser sign-ins and links, and links from native apps

    async def start_flow(
        self, purpose: str, provider: str, member_id: str | None, return_to: str | None
    ) -> StartedFlow:
        flow = StartedFlow(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(64),
        )
        now = self.clock()

        async def work(connection: AsyncConnection) -> None:
            await store.delete_expired_flows(connection, now - FLOW_LIFETIME)
            await store.insert_flow(
                connection,
                {
                    "id": digest(flow.state),
                    "purpose": purpose,
                    "provider": provider,
                    "nonce": flow.nonce,
                    "code_verifier": flow.code_verifier,
                    "member_id": member_id,
                    "return_to": return_to,
                    "created_at": now,
                    "expires_at": now + FLOW_LIFETIME,
                },
            )

        await self.uow.write(work)
        return flow

    async def pending_flow(self, state: str) -> FlowRecord | None:
        """The flow a callback's state names, if it is still to be used (a read: the
        sign-in or link that succeeds uses it up, see ``FlowUse``)."""
        return await self.uow.read(
            lambda c: store.pending_flow(c, digest(state), (SIGN_IN, LINK), self.clock())
        )

    async def finish_flow(self, state: str) -> FlowRecord | None:
        """Use up the flow a callback's state names (a refused callback); None if unknown,
        used or expired."""
        return await self.uow.write(
            lambda c: store.consume_flow(c, digest(state), (SIGN_IN, LINK), self.clock())
        )

    async def start_native_link(self, member_id: str) -> tuple[str, datetime]:
        nonce = secrets.token_urlsafe(32)
        now = self.clock()
        expires = now + LINK_NONCE_LIFETIME

        async def work(connection: AsyncConnection) -> None:
            await store.insert_flow(
                connection,
                {
                    "id": digest(nonce),
                    "purpose": "native_link",
                    "provider": "",
                    "nonce": nonce,
                    "member_id": member_id,
                    "created_at": now,
                    "expires_at": expires,
                },
            )

        await self.uow.write(work)
        return nonce, expires

    async def pending_link(self, nonce: str, member_id: str) -> FlowRecord | None:
        """The native link a nonce started, if it is still to be used and was issued to this
        member (a read: the link that succeeds uses it up, see ``FlowUse``)."""
        found = await self.uow.read(
            lambda c: store.pending_flow(c, digest(nonce), ("native_link",), self.clock())
        )
        return found if found is not None and found.member_id == member_id else None

    async def discard_link(self, nonce: str, member_id: str) -> None:
        """Use up a native link's nonce that was refused: the member starts again."""

        async def work(connection: AsyncConnection) -> None:
            await store.consume_flow(
                connection, digest(nonce), ("native_link",), self.clock(), member_id
            )

        await self.uow.write(work)

    # Sessions

    async def open_session(
        self,
        member_id: str | None,
        operator: bool,
        issuer: str,
        subject: str,
        mfa: bool,
        lifetime: timedelta,
        step_up_from: datetime | None = None,
        flow: FlowUse | None = None,
    ) -> str:
        """A browser session; ``flow``: the sign-in flow it uses up (in its transaction)."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        values = {
            "id": digest(token),
            "member_id": member_id,
            "operator": operator,
            "issuer": issuer,
            "subject": subject,
            "mfa": mfa,
            "step_up_from": step_up_from,
            "created_at": now,
            "expires_at": now + lifetime,
        }

        async def work(connection: AsyncConnection) -> None:
            if member_id is not None:
                # The sign-in found the member in an earlier transaction: an erasure that
                # committed since refuses it (MEMBER_ERASED), and one that starts now
                # waits for this session, then deletes it.
                await locks.live_member(connection, member_id, Lock.SHARED, refuse_erased=True)
            if flow is not None and not await self._use(connection, flow):
                raise DomainError(ErrorCode.LINK_INVALID, FLOW_USED)
            await store.delete_ended_sessions(connection, now - SESSION_RETENTION)
            await store.insert_session(connection, values)

        await self.uow.write(work)
        return token

    async def session(self, token: str) -> SessionRecord | None:
        async def work(connection: AsyncConnection) -> SessionRecord | None:
            found = await store.session(connection, digest(token), self.clock())
            if found is None or found.member_id is None:
                return found
            members = await repository.members_by_id(connection, [found.member_id])
            if found.member_id not in members or members[found.member_id].erased_at is not None:
                return None  # unknown, or erased (its sessions were deleted with it)
            survivor = members[found.member_id].id
            if survivor == found.member_id:
                return found
            return dataclasses.replace(found, member_id=survivor)

        return await self.uow.read(work)

    async def close_session(self, token: str) -> None:
        await self.uow.write(lambda c: store.revoke_session(c, digest(token), self.clock()))
