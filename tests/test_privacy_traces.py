"""What an erasure leaves of a member's traces outside the ledger: no request fingerprint
that gives a customer id back, no rejected import line quoting it, no imported file kept
after its import failed."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from gateway.api.graphql.scalars import decode_member_id, encode_id
from gateway.imports.service import ImportService
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.ledger.posting import fingerprint
from gateway.members.identity import IdentityService
from gateway.members.records import Proof
from gateway.privacy.service import PrivacyService
from tests.conftest import Gateway
from tests.operations import CONVERT, EARN, ENROL, payload
from tests.test_expiry import earned, enrol
from tests.test_imports import PARTNER, earn_import, earns_csv, run_jobs, stored, upload
from tests.test_privacy import ERASE, ok
from tests.test_programme import APPLY, REFERRAL_CODE, gw  # noqa: F401


async def hashes(gateway: Gateway) -> set[str]:
    async with gateway.service.engine.connect() as connection:
        found = await connection.scalars(sa.text("SELECT request_hash FROM transfers"))
        return {str(value) for value in found}


async def test_no_fingerprint_gives_an_erased_customer_id_back(gateway: Gateway):
    member = await enrol(gateway, "SKY-1042")
    earn = {"partner": "skyway", "member": {"partnerCustomerId": "SKY-1042"}, "points": 50}
    answer = payload(await gateway.gql(EARN, {"input": {**earn, "idempotencyKey": "fp-1"}}))
    assert answer["userErrors"] == []
    before = await hashes(gateway)

    def request(customer_id: str) -> dict[str, object]:
        member = {"partner": "skyway", "customer_id": customer_id}
        return {"member": member, "points": 50, "purchase_amount": None, "reason": None}

    assert fingerprint(request("SKY-1042")) in before  # what an attacker would try
    await ok(gateway, ERASE, {"id": member})
    after = await hashes(gateway)
    # The earn's fingerprint is gone: trying the likely customer ids finds nothing.
    assert len(before - after) == 1
    assert not any(fingerprint(request(f"SKY-{n}")) in after for n in range(1000, 1100))
    assert all(value.startswith("erased:") for value in after - before)


async def test_rejected_lines_lose_the_erased_customer_id(gateway: Gateway):
    token = await gateway.partner_token(PARTNER)
    rows = ["CUST-REJ-77,rej-1,5,2026-05-30T10:00:00Z", "CUST-OTHER-8,rej-2,5,"]
    started = (await upload(gateway, earns_csv(rows), token)).json()
    await run_jobs(gateway)
    found = await earn_import(gateway, started["id"], token)
    assert found is not None
    messages = [e["node"]["message"] for e in found["rejections"]["edges"]]
    assert len(messages) == 2 and "'CUST-REJ-77'" in messages[0]
    # The customer enrols later, earns with the rejected line's key, and is erased.
    member = await enrol(gateway, "CUST-REJ-77", PARTNER)
    await earned(gateway, member, 5, "rej-1", PARTNER)
    await ok(gateway, ERASE, {"id": member})
    found = await earn_import(gateway, started["id"], token)
    assert found is not None
    nodes = [e["node"] for e in found["rejections"]["edges"]]
    assert "CUST-REJ-77" not in repr(nodes) and "'erased'" in nodes[0]["message"]
    assert nodes[0]["idempotencyKey"] is None
    assert "'CUST-OTHER-8'" in nodes[1]["message"] and nodes[1]["idempotencyKey"] == "rej-2"


async def test_a_failed_import_does_not_keep_its_file(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
):
    async def gone(*args: object) -> None:
        raise DomainError(ErrorCode.UNKNOWN_PARTNER, "The partner is gone.")

    token = await gateway.partner_token(PARTNER)
    started = (await upload(gateway, earns_csv(["c1,k-1,5,"]), token)).json()
    assert (await stored(gateway))[1] > 0
    monkeypatch.setattr(ImportService, "run", gone)
    await run_jobs(gateway)
    found = await earn_import(gateway, started["id"], token)
    assert found is not None and found["status"] == "FAILED"
    assert await stored(gateway) == (1, 0)


async def test_a_sign_in_racing_an_erasure_opens_no_session(gateway: Gateway):
    """A sign-in finds the member, the erasure commits, then the sign-in opens its session
    (two transactions, as /auth/callback runs them): refused, and nothing links to the
    erased member either; a session opened just before is no longer one."""
    identity = IdentityService(gateway.service, gateway.clock)
    proof = Proof("skyway", "https://idp.test", "racer", None)
    signed = await identity.sign_in(proof)
    member = encode_id("Member", signed.member_id)
    hour = timedelta(hours=1)
    before = await identity.open_session(
        signed.member_id, False, proof.issuer, proof.subject, False, hour
    )
    assert await identity.session(before) is not None
    await ok(gateway, ERASE, {"id": member})
    with pytest.raises(DomainError) as refused:
        await identity.open_session(signed.member_id, False, proof.issuer, "racer", False, hour)
    assert refused.value.code is ErrorCode.MEMBER_ERASED
    assert await identity.session(before) is None
    other = Proof("brewbar", "https://idp.test", "racer-2", None)
    with pytest.raises(DomainError) as refused:
        await identity.link(signed.member_id, other)
    assert refused.value.code is ErrorCode.MEMBER_ERASED
    assert await identity.linked(other.issuer, other.subject) is None
    async with gateway.service.engine.connect() as connection:
        subjects = await connection.scalars(sa.text("SELECT subject FROM sessions"))
        assert "racer" not in set(subjects)


async def test_the_erased_prefix_is_reserved(gateway: Gateway):
    for customer in ("erased:abc", "ERASED:abc"):
        enrol_input = {"partner": "skyway", "partnerCustomerId": customer}
        refused = payload(await gateway.gql(ENROL, {"input": enrol_input}))["userErrors"]
        assert [(e["code"], e["field"]) for e in refused] == [
            ("INVALID_INPUT", ["input", "partnerCustomerId"])
        ]
        assert "reserved" in refused[0]["message"]
    member = await enrol(gateway, "SKY-PREFIX")
    earn = {"partner": "skyway", "member": {"id": member}, "points": 5}
    refused = payload(
        await gateway.gql(EARN, {"input": {**earn, "idempotencyKey": "Erased:rcpt-1"}})
    )["userErrors"]
    assert [(e["code"], e["field"]) for e in refused] == [
        ("INVALID_INPUT", ["input", "idempotencyKey"])
    ]
    by_customer = {"partner": "skyway", "member": {"partnerCustomerId": "erased:x"}, "points": 5}
    refused = payload(await gateway.gql(EARN, {"input": {**by_customer, "idempotencyKey": "k-1"}}))[
        "userErrors"
    ]
    assert [e["code"] for e in refused] == ["INVALID_INPUT"]
    token = await gateway.partner_token(PARTNER)
    rows = ["SKY-X,erased:k,5,", "erased:c,k-2,5,"]
    started = (await upload(gateway, earns_csv(rows), token)).json()
    await run_jobs(gateway)
    found = await earn_import(gateway, started["id"], token)
    assert found is not None
    assert [e["node"]["code"] for e in found["rejections"]["edges"]] == ["INVALID_INPUT"] * 2


async def test_an_export_names_no_other_member(gw: Gateway):
    """A referral's other member is someone else: the export says when, not who."""
    referrer, friend = await enrol(gw, "REF-1", "shop"), await enrol(gw, "REF-2", "shop")
    code = (await gw.gql(REFERRAL_CODE, {"id": referrer}))["data"]["member"]["referralCode"]
    applied = payload(await gw.gql(APPLY, {"input": {"memberId": friend, "code": code}}))
    assert applied["userErrors"] == [] and applied["applied"]
    service = PrivacyService(gw.service)
    ids = {member: decode_member_id(member) for member in (referrer, friend)}
    theirs = {member: await service.export(str(ids[member])) for member in ids}
    assert theirs[referrer]["referrals"]["referred"][0]["referredId"] is None
    assert theirs[friend]["referrals"]["referredBy"]["referrerId"] is None
    assert str(ids[friend]) not in repr(theirs[referrer])
    assert str(ids[referrer]) not in repr(theirs[friend])


async def test_every_partner_that_heard_of_the_member_is_told(gateway: Gateway):
    """Enrolled at SkyWay only, with a wallet at BrewBar by a conversion: both are told."""
    member = await enrol(gateway, "SKY-TOLD")
    await earned(gateway, member, 500, "told-1")
    convert = {"memberId": member, "fromPartner": "skyway", "toPartner": "brewbar"}
    await ok(gateway, CONVERT, {"input": {**convert, "points": 200, "idempotencyKey": "told-c"}})
    await ok(gateway, ERASE, {"id": member})
    async with gateway.service.engine.connect() as connection:
        told = await connection.scalars(
            sa.text("SELECT partner FROM outbox WHERE type = 'member.erased' ORDER BY partner")
        )
        assert list(told) == ["brewbar", "skyway"]
