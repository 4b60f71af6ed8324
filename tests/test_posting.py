"""The posting kernel's public API (gateway/ledger/posting.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.gifting.service import GiftService
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.ledger.posting import Claim, fingerprint
from gateway.ledger.records import MemberRef, Posting
from gateway.ledger.rules import Leg, TransferKind, check_reversible, earn_legs, redeem_legs
from gateway.ledger.service import LedgerService
from gateway.members import store as member_store
from tests.conftest import Gateway

EARN = {"kind": TransferKind.EARN.value, "partner": "skyway", "points": 100, "reason": "test"}
REDEEM = {"kind": TransferKind.REDEEM.value, "partner": "skyway", "points": 500}


async def counts(service: LedgerService) -> tuple[int, int]:
    """How many transfers and outbox events there are."""
    async with service.engine.connect() as connection:
        transfers = await connection.scalar(sa.text("SELECT count(*) FROM transfers"))
        events = await connection.scalar(sa.text("SELECT count(*) FROM outbox"))
    return int(transfers or 0), int(events or 0)


async def balance(service: LedgerService, member: str) -> int:
    return {w.pool: w.balance for w in (await service.wallets([member]))[member]}.get("skyway", 0)


async def post(
    service: LedgerService,
    claim: Claim,
    values: dict[str, Any],
    member: str,
    legs: list[Leg],
    guard: Any = None,
) -> Posting:
    async def work(connection: AsyncConnection) -> Posting:
        return await service.kernel.post(connection, claim, values, member, legs, guard)

    return await service.uow.write(work)


async def refused(call: Any) -> DomainError:
    with pytest.raises(DomainError) as caught:
        await call
    return caught.value


def test_a_claim_checks_its_key_and_fingerprints_the_request() -> None:
    claim = Claim.of("earn:skyway", "K-1", {"points": 1, "member": {"id": "m"}})
    assert claim == Claim("earn:skyway", "K-1", fingerprint({"member": {"id": "m"}, "points": 1}))
    assert claim.columns() == {
        "idempotency_scope": "earn:skyway",
        "idempotency_key": "K-1",
        "request_hash": claim.fingerprint,
    }
    assert Claim.of("earn:skyway", "K-1", {"points": 2}).fingerprint != claim.fingerprint
    with pytest.raises(dataclasses.FrozenInstanceError):
        claim.key = "K-2"  # type: ignore[misc]
    for bad in ("", "   ", "K\x01", "k" * 1000):
        with pytest.raises(DomainError) as caught:
            Claim.of("earn:skyway", bad, {})
        assert (caught.value.code, caught.value.field) == (
            ErrorCode.INVALID_INPUT,
            ("idempotency_key",),
        )


def test_the_ledger_rules_refuse_to_reverse_a_gift() -> None:
    with pytest.raises(DomainError) as caught:
        check_reversible(TransferKind.GIFT)
    assert caught.value.code is ErrorCode.NOT_REVERSIBLE
    assert caught.value.message == (
        "A gift cannot be reversed; the receiver can gift the points back."
    )
    for kind in (TransferKind.EARN, TransferKind.REDEEM, TransferKind.CONVERSION):
        check_reversible(kind)  # no refusal


async def test_a_replay_answers_with_the_first_posting_and_writes_nothing(gateway: Gateway):
    service = gateway.service
    member = (await service.enrol("skyway", "A")).member.id
    claim = Claim.of("test:skyway", "K-1", {"points": 100})
    first = await post(service, claim, EARN, member, earn_legs("skyway", 100))
    assert not first.replayed and first.transfer.idempotency_key == "K-1"
    before = await counts(service)

    again = await post(service, claim, EARN, member, earn_legs("skyway", 100))
    assert again.replayed and again.transfer == first.transfer
    assert [(leg.pool, leg.account, leg.amount) for leg in again.legs] == [
        (leg.pool, leg.account, leg.amount) for leg in first.legs
    ]
    found = await service.uow.read(lambda c: service.kernel.replay(c, claim))
    assert found is not None and found.replayed and found.transfer == first.transfer
    assert await counts(service) == before
    assert await balance(service, member) == 100
    # A key never claimed has nothing to replay.
    fresh = Claim.of("test:skyway", "K-2", {"points": 100})
    assert await service.uow.read(lambda c: service.kernel.replay(c, fresh)) is None


async def test_the_same_key_for_another_request_is_refused(gateway: Gateway):
    service = gateway.service
    member = (await service.enrol("skyway", "A")).member.id
    await post(
        service,
        Claim.of("test:skyway", "K-1", {"points": 100}),
        EARN,
        member,
        earn_legs("skyway", 100),
    )
    before = await counts(service)
    other = Claim.of("test:skyway", "K-1", {"points": 200})
    values = {**EARN, "points": 200}
    error = await refused(post(service, other, values, member, earn_legs("skyway", 200)))
    assert (error.code, error.field) == (ErrorCode.IDEMPOTENCY_KEY_REUSED, ("idempotency_key",))
    error = await refused(service.uow.read(lambda c: service.kernel.replay(c, other)))
    assert error.code is ErrorCode.IDEMPOTENCY_KEY_REUSED
    assert await counts(service) == before
    # The same key in another scope is another key.
    elsewhere = Claim.of("test:brewbar", "K-1", {"points": 200})
    assert not (await post(service, elsewhere, values, member, earn_legs("skyway", 200))).replayed


async def test_a_refused_guard_or_posting_leaves_the_key_free(gateway: Gateway):
    service = gateway.service
    member = (await service.enrol("skyway", "A")).member.id
    claim = Claim.of("test:skyway", "K-1", {"points": 100})
    seen: list[int] = []

    async def refuse(connection: AsyncConnection, transfer_id: int) -> None:
        seen.append(transfer_id)
        raise DomainError(ErrorCode.STEP_UP_REQUIRED, "no", ("points",))

    before = await counts(service)
    error = await refused(post(service, claim, EARN, member, earn_legs("skyway", 100), refuse))
    assert error.code is ErrorCode.STEP_UP_REQUIRED and len(seen) == 1
    assert await counts(service) == before and await balance(service, member) == 0

    async def allow(connection: AsyncConnection, transfer_id: int) -> None:
        seen.append(transfer_id)

    done = await post(service, claim, EARN, member, earn_legs("skyway", 100), allow)
    assert not done.replayed and seen[-1] == done.transfer.id
    # A replay runs no guard.
    assert (await post(service, claim, EARN, member, earn_legs("skyway", 100), refuse)).replayed
    assert len(seen) == 2

    # An overdraft is INSUFFICIENT_POINTS, and its key stays free too.
    spend = Claim.of("test:skyway", "R-1", {"points": 500})
    error = await refused(post(service, spend, REDEEM, member, redeem_legs("skyway", 500)))
    assert (error.code, error.field) == (ErrorCode.INSUFFICIENT_POINTS, ("points",))
    assert "holds 100 points; 500 are needed" in error.message
    await service.earn("skyway", MemberRef(id=member), "top-up", points=400)
    assert not (await post(service, spend, REDEEM, member, redeem_legs("skyway", 500))).replayed
    assert await balance(service, member) == 0


async def test_an_unknown_member_is_refused(gateway: Gateway):
    service = gateway.service
    claim = Claim.of("test:skyway", "K-1", {"points": 100})
    error = await refused(post(service, claim, EARN, "no-such-member", earn_legs("skyway", 100)))
    assert (error.code, error.field) == (ErrorCode.UNKNOWN_MEMBER, ("member", "id"))
    kernel = service.kernel
    for ref in (MemberRef(id="no-such-member"), MemberRef(partner="skyway", customer_id="X")):
        error = await refused(service.uow.write(lambda c, ref=ref: kernel.lock_member(c, ref)))
        assert error.code is ErrorCode.UNKNOWN_MEMBER
        error = await refused(service.uow.read(lambda c, ref=ref: kernel.resolve(c, ref)))
        assert error.code is ErrorCode.UNKNOWN_MEMBER


async def test_the_member_lock_and_resolve_follow_a_merge(gateway: Gateway):
    service = gateway.service
    alice = (await service.enrol("skyway", "A")).member.id
    bob = (await service.enrol("skyway", "B")).member.id
    kernel = service.kernel
    by_customer = MemberRef(partner="skyway", customer_id="B")
    assert await service.uow.write(lambda c: kernel.lock_member(c, by_customer)) == bob

    async def merge(connection: AsyncConnection) -> None:
        await service.absorb_wallets(connection, bob, alice)
        await member_store.retire_member(connection, bob, alice, gateway.clock())

    await service.uow.write(merge)
    for ref in (MemberRef(id=bob), by_customer):
        assert await service.uow.write(lambda c, ref=ref: kernel.lock_member(c, ref)) == alice
    assert await service.uow.read(lambda c: kernel.resolve(c, MemberRef(id=bob))) == alice


async def test_the_service_refuses_to_reverse_a_gift(gateway: Gateway):
    service = gateway.service
    giver = (await service.enrol("skyway", "A")).member.id
    receiver = (await service.enrol("skyway", "B")).member.id
    await service.earn("skyway", MemberRef(id=giver), "e", points=1000)
    gift = await GiftService(service).gift("skyway", giver, MemberRef(id=receiver), 300, "g")
    before = await counts(service)
    for points in (None, 100):
        error = await refused(service.reverse(gift.transfer.id, "X", points=points))
        assert (error.code, error.field) == (ErrorCode.NOT_REVERSIBLE, ("transfer_id",))
        assert error.message == "A gift cannot be reversed; the receiver can gift the points back."
    assert await counts(service) == before
    assert await balance(service, giver) == 700 and await balance(service, receiver) == 300
