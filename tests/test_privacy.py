"""Members' data rights over HTTP: a member with two sign-ins, enrolments at two partners
(one merged in), earns, a purchase and its return, a conversion, a hold and a reward
exports their data, and is erased: afterwards nothing the gateway answers, nor any row of
its database, holds their customer ids, sign-in subject or receipts, their points went to
breakage, settlement did not move and the ledger's audit is sound."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.api.graphql.scalars import decode_member_id
from gateway.kernel.schema import metadata
from tests.conftest import Gateway
from tests.operations import CONVERT, EARN, ENROL, ERRORS, MEMBER, codes, payload
from tests.sso import CLOCK, Brands, as_browser, sign_in
from tests.test_console_settlement import OPEN
from tests.test_gifting import GIFT
from tests.test_holds import AUTHORIZE
from tests.test_sign_in import ME, merge_alice, my_id

EXPORT_MINE = f"mutation {{ exportMyData {{ data {ERRORS} }} }}"
EXPORT = f"""
mutation($id: ID!) {{ exportMemberData(input: {{memberId: $id}}) {{ data {ERRORS} }} }}"""
ERASE = f"""
mutation($id: ID!) {{
  eraseMember(input: {{memberId: $id}}) {{
    memberId erasedAt releasedHolds forfeited {{ partner points }} {ERRORS}
  }}
}}"""
RETURN = f"""
mutation($input: ReturnPurchaseInput!) {{
  returnPurchase(input: $input) {{ clawedBack {ERRORS} }}
}}"""
CREATE_REWARD = f"""
mutation($input: CreateRewardInput!) {{
  createReward(input: $input) {{ reward {{ id }} {ERRORS} }}
}}"""
REDEEM_REWARD = f"""
mutation($input: RedeemRewardInput!) {{
  redeemReward(input: $input) {{ receipt {{ paidPoints }} {ERRORS} }}
}}"""
BREAKAGE = "query($p: String!) { breakage(partner: $p) { points } }"
IDENTITIES = "query($id: ID!) { member(id: $id) { identities { subject } } }"
HISTORY = """
query($id: ID!) {
  member(id: $id) { transfers(first: 100) { edges { node { idempotencyKey reason } } } }
}"""
MY_ENROLMENTS = "{ me { id enrolments { partnerCustomerId } } }"
SECRETS = ("alice", "SKY-1001", "BB-2002", "RCPT")  # subject, customer ids, receipts/keys


def forfeited(erased: dict[str, Any]) -> dict[str, int]:
    """An erasure's forfeited points by partner."""
    return {found["partner"]: found["points"] for found in erased["forfeited"]}


async def ok(gateway: Gateway, query: str, variables: dict[str, Any], **kw: Any) -> Any:
    found = payload(await gateway.gql(query, variables, **kw))
    assert codes(found) == [], found
    return found


async def alice_with_history(sso: Gateway) -> str:
    """Alice (merged from SkyWay's SKY-1001 and BrewBar's BB-2002, signed in with both)
    buys, returns part, converts, gets and gives a gift with a message, holds miles and
    redeems a reward; her member id."""
    member, _ = await merge_alice(sso)
    earn = {"partner": "skyway", "member": {"id": member}}
    await ok(sso, EARN, {"input": {**earn, "purchaseAmount": "150.00", "idempotencyKey": "RCPT-1"}})
    back = {"partner": "skyway", "receipt": "RCPT-1", "amount": "50.00"}
    await ok(sso, RETURN, {"input": {**back, "idempotencyKey": "RCPT-RET-1"}})
    convert = {"memberId": member, "fromPartner": "skyway", "toPartner": "brewbar"}
    await ok(sso, CONVERT, {"input": {**convert, "points": 200, "idempotencyKey": "RCPT-C"}})
    hold = {**earn, "points": 100, "idempotencyKey": "RCPT-H"}
    await ok(sso, AUTHORIZE, {"input": hold})
    friend = payload(
        await sso.gql(ENROL, {"input": {"partner": "skyway", "partnerCustomerId": "FRIEND-1"}})
    )["member"]["id"]
    friendly = {"partner": "skyway", "member": {"id": friend}, "points": 300}
    await ok(sso, EARN, {"input": {**friendly, "idempotencyKey": "friend-earn"}})
    for n, (giver, receiver) in enumerate(((friend, member), (member, friend))):
        gift = {"partner": "skyway", "giver": {"id": giver}, "receiver": {"id": receiver}}
        gift |= {"points": 100, "message": f"Hi Alice! {n}", "idempotencyKey": f"gift-{n}"}
        await ok(sso, GIFT, {"input": gift})
    reward = {"kind": "DISCOUNT", "name": "Cake", "pricePoints": 20, "value": "1.00"}
    created = await ok(sso, CREATE_REWARD, {"input": {"partner": "brewbar", "reward": reward}})
    redeem = {"rewardId": created["reward"]["id"], "member": {"id": member}, "payWith": "brewbar"}
    await ok(sso, REDEEM_REWARD, {"input": {**redeem, "idempotencyKey": "RCPT-R"}})
    return member


def leaks(text: str, secrets: tuple[str, ...] = SECRETS) -> list[str]:
    return [secret for secret in secrets if secret.lower() in text.lower()]


async def database_leaks(
    gateway: Gateway, secrets: tuple[str, ...] = SECRETS
) -> dict[str, list[str]]:
    """Every table's rows as text: which of the secrets each still holds."""
    found = {}
    async with gateway.service.engine.connect() as connection:
        for table in metadata.sorted_tables:
            rows = (await connection.execute(sa.select(table))).all()
            text = json.dumps([list(map(str, row)) for row in rows])
            if leaks(text, secrets):
                found[table.name] = leaks(text, secrets)
    return found


async def request_hashes(gateway: Gateway, member_id: str) -> tuple[str, ...]:
    """The stored fingerprints of the requests of the member (and those merged into it)."""
    ids = "(SELECT id FROM members WHERE id = :m OR merged_into = :m)"
    purchases = f"SELECT id FROM purchases WHERE member_id IN {ids}"
    found: set[str] = set()
    async with gateway.service.engine.connect() as connection:
        for query in (
            f"SELECT request_hash FROM transfers WHERE member_id IN {ids}",
            f"SELECT request_hash FROM remote_operations WHERE member_id IN {ids}",
            f"SELECT request_hash FROM purchase_returns WHERE purchase_id IN ({purchases})",
        ):
            found |= {str(h) for h in (await connection.scalars(sa.text(query), {"m": member_id}))}
    return tuple(found)


async def test_export_then_erase(sso: Gateway, brands: Brands):
    member = await alice_with_history(sso)
    uuid = decode_member_id(member)
    await sso.settle_events()  # the audit entries of her history's events
    # The member's own export, in the browser session: every section, her own values.
    mine = (await as_browser(sso, EXPORT_MINE)).json()["data"]["exportMyData"]
    assert mine["userErrors"] == []
    document = mine["data"]
    assert document["format"] == 1 and document["complete"] is True
    assert document["member"]["id"] == uuid and len(document["member"]["mergedMembers"]) == 1
    for section in ("identities", "enrolments", "wallets", "transfers", "holds", "purchases"):
        assert document[section], section
    for section in ("rewardRedemptions", "badges", "tier", "referrals", "sessions"):
        assert section in document
    assert {e["customerId"] for e in document["enrolments"]} == {"SKY-1001", "BB-2002"}
    assert {(i["provider"], i["subject"]) for i in document["identities"]} == {
        ("skyway", "alice"),
        ("brewbar", "alice"),
    }
    (purchase,) = document["purchases"]
    assert purchase["receipt"] == "RCPT-1" and Decimal(purchase["returns"][0]["amount"]) == 50
    assert {t["kind"] for t in document["transfers"]} >= {"earn", "conversion", "hold", "merge"}
    # The audit entries of the members merged into hers are hers too.
    retired = document["member"]["mergedMembers"][0]
    about = {entry["memberId"] for entry in document["auditEntries"]}
    assert {uuid, retired} <= about
    assert all(t["legs"] for t in document["transfers"])
    # The gift the friend gave her is shown without the friend's id and key.
    theirs = [t for t in document["transfers"] if t["memberId"] is None]
    assert [(t["kind"], t["idempotencyKey"]) for t in theirs] == [("gift", None)]
    assert {t["memberId"] for t in document["transfers"]} - {None} <= {
        uuid,
        *document["member"]["mergedMembers"],
    }
    assert "gift-0" not in json.dumps(document) and "gift-1" in json.dumps(document)
    assert document["rewardRedemptions"][0]["reward"] == "Cake"
    assert [h["status"] for h in document["holds"]] == ["authorized"]
    assert "coalition_session" not in json.dumps(document["sessions"])
    # An operator's export is the same document.
    theirs = (await ok(sso, EXPORT, {"id": member}))["data"]
    assert {**theirs, "exportedAt": None, "sessions": None, "auditEntries": None} == {
        **document,
        "exportedAt": None,
        "sessions": None,
        "auditEntries": None,
    }
    # Her own export is in the audit trail the operator's export shows.
    assert "exportMyData" in [e["action"] for e in theirs["auditEntries"]]
    # A partner's app and another member are refused.
    partner = await sso.partner_token("skyway")
    refused = payload(await sso.gql(EXPORT, {"id": member}, token=partner))
    assert codes(refused) == ["ACCESS_DENIED"] and refused["data"] is None
    bob = brands.token("skyway", "bob")
    assert codes(payload(await sso.gql(EXPORT, {"id": member}, token=bob))) == ["ACCESS_DENIED"]
    assert codes(payload(await sso.gql(ERASE, {"id": member}, token=partner))) == ["ACCESS_DENIED"]
    assert codes(payload(await sso.gql(ERASE, {"id": member}, token=bob))) == ["ACCESS_DENIED"]

    held = await database_leaks(sso)
    assert held.keys() >= {"enrolments", "identities", "outbox", "transfers", "purchases"}
    obligations = (await sso.gql(OPEN))["data"]["openObligations"]
    before = {
        p: (await sso.gql(BREAKAGE, {"p": p}))["data"]["breakage"]["points"]
        for p in ("skyway", "brewbar")
    }
    wallets = {w["partner"]: w for w in document["wallets"]}
    hashes = await request_hashes(sso, uuid)
    assert len(hashes) >= 5
    erased = await ok(sso, ERASE, {"id": member})
    assert erased["memberId"] == member and erased["releasedHolds"] == 1
    assert forfeited(erased) == {
        "skyway": wallets["skyway"]["balance"] + 100,
        "brewbar": wallets["brewbar"]["balance"],
    }
    after = {
        p: (await sso.gql(BREAKAGE, {"p": p}))["data"]["breakage"]["points"]
        for p in ("skyway", "brewbar")
    }
    assert after == {p: before[p] + forfeited(erased)[p] for p in before}
    assert (await sso.gql(OPEN))["data"]["openObligations"] == obligations
    assert await sso.audit() == []

    # Signed out: the session is gone.
    assert (await as_browser(sso, ME)).status_code == 401
    page = await sso.client.get("/account")
    assert page.status_code == 303 and page.headers["location"] == "/account/sign-in"
    assert (await sso.client.get("/account/export")).status_code == 401
    # Nothing answered, and no row stored, holds her customer ids, subject or receipts.
    answers = [
        await sso.gql(MEMBER, {"id": member, "first": 100}),
        await sso.gql(IDENTITIES, {"id": member}),
        await sso.gql(HISTORY, {"id": member}),
        await sso.gql(EXPORT, {"id": member}),
    ]
    for answer in answers:
        assert leaks(json.dumps(answer)) == [], answer
    assert await database_leaks(sso) == {}
    # Nor any fingerprint of her requests (a hash of a request naming her customer id
    # would give it back to anyone trying the few likely ids).
    assert await database_leaks(sso, hashes) == {}
    async with sso.service.engine.connect() as connection:
        told = await connection.execute(
            sa.text("SELECT partner, data FROM outbox WHERE type = 'member.erased'")
        )
        assert sorted((row.partner, str(row.data)) for row in told) == [
            ("brewbar", "{}"),
            ("skyway", "{}"),
        ]
    wallets_now = (await sso.gql(MEMBER, {"id": member}))["data"]["member"]["wallets"]
    assert {w["balance"] for w in wallets_now} == {0}
    seen = await sso.gql("query($id: ID!) { member(id: $id) { erasedAt } }", {"id": member})
    assert seen["data"]["member"]["erasedAt"] == erased["erasedAt"]
    export = (await ok(sso, EXPORT, {"id": member}))["data"]
    assert export["member"]["erasedAt"] is not None
    assert export["member"]["erasure"]["erasedBy"].startswith("operator:")
    assert all(i["unlinkedAt"] for i in export["identities"])
    assert [h["status"] for h in export["holds"]] == ["voided"]

    # Further operations on her, and a second erasure, are refused.
    earn = {"partner": "skyway", "member": {"id": member}, "points": 5, "idempotencyKey": "x"}
    refused = payload(await sso.gql(EARN, {"input": earn}))["userErrors"]
    assert [(e["code"], e["field"]) for e in refused] == [
        ("MEMBER_ERASED", ["input", "member", "id"])
    ]
    twice = payload(await sso.gql(ERASE, {"id": member}))["userErrors"]
    assert [(e["code"], e["field"]) for e in twice] == [("MEMBER_ERASED", ["input", "memberId"])]
    # The same customer id, or the same sign-in, starts a new member.
    again = payload(
        await sso.gql(ENROL, {"input": {"partner": "skyway", "partnerCustomerId": "SKY-1001"}})
    )
    assert again["created"] is True and again["member"]["id"] != member
    await sign_in(sso, "brewbar", "alice")
    assert await my_id(sso) not in (member, again["member"]["id"])


async def test_a_member_erases_themself_with_a_fresh_sign_in(sso: Gateway):
    await sign_in(sso, "skyway", "bob")
    member = await my_id(sso)
    CLOCK.now += timedelta(minutes=6)
    stale = (await as_browser(sso, ERASE, {"id": member})).json()["data"]["eraseMember"]
    assert codes(stale) == ["REAUTHENTICATION_REQUIRED"] and stale["memberId"] is None
    await sign_in(sso, "skyway", "bob")
    assert await my_id(sso) == member
    done = (await as_browser(sso, ERASE, {"id": member})).json()["data"]["eraseMember"]
    assert codes(done) == [] and done["memberId"] == member
    assert (await as_browser(sso, ME)).status_code == 401
    await sign_in(sso, "skyway", "bob")
    assert await my_id(sso) != member


async def test_a_token_renewed_without_a_new_sign_in_may_not_erase(sso: Gateway, brands: Brands):
    now = int(CLOCK().timestamp())
    first = brands.token("skyway", "bob")
    member = (await sso.gql("{ me { id } }", token=first))["data"]["me"]["id"]
    # Renewed with a refresh token: a recent iat, but no auth_time or an old one.
    for renewed in (
        brands.token("skyway", "bob", auth_time=None, iat=now),
        brands.token("skyway", "bob", auth_time=now - 600, iat=now),
    ):
        refused = payload(await sso.gql(ERASE, {"id": member}, token=renewed))
        assert codes(refused) == ["REAUTHENTICATION_REQUIRED"] and refused["memberId"] is None
    # A token right after a sign-in at the provider (auth_time now) may.
    fresh = brands.token("skyway", "bob", auth_time=now - 60)
    assert codes(payload(await sso.gql(ERASE, {"id": member}, token=fresh))) == []


async def test_unknown_and_malformed_ids_are_typed_errors(sso: Gateway):
    for bad in (
        "nope",
        "TWVtYmVyOjEyMw==",
        "TWVtYmVyOjAwMDAwMDAwLTAwMDAtNDAwMC04MDAwLTAwMDAwMDAwMDAwMA==",
    ):
        assert codes(payload(await sso.gql(EXPORT, {"id": bad}))) == ["UNKNOWN_MEMBER"]
        assert codes(payload(await sso.gql(ERASE, {"id": bad}))) == ["UNKNOWN_MEMBER"]
    partner = await sso.partner_token("skyway")
    assert codes(payload(await sso.gql(EXPORT_MINE, token=partner))) == ["ACCESS_DENIED"]


async def test_a_long_history_is_read_in_pages_and_bounded(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
):
    from gateway.privacy import export
    from gateway.privacy.service import PrivacyService

    monkeypatch.setattr(export, "PAGE", 2)
    enrol = {"input": {"partner": "skyway", "partnerCustomerId": "LONG-1"}}
    member = payload(await gateway.gql(ENROL, enrol))["member"]["id"]
    giver = payload(
        await gateway.gql(ENROL, {"input": {"partner": "skyway", "partnerCustomerId": "G-1"}})
    )["member"]["id"]
    for n in range(5):
        earn = {"partner": "skyway", "member": {"id": member}, "points": 200}
        await ok(gateway, EARN, {"input": {**earn, "idempotencyKey": f"e-{n}"}})
    convert = {"memberId": member, "fromPartner": "skyway", "toPartner": "brewbar"}
    await ok(gateway, CONVERT, {"input": {**convert, "points": 300, "idempotencyKey": "c"}})
    gift = {"partner": "skyway", "giver": {"id": giver}, "receiver": {"id": member}}
    await ok(
        gateway,
        EARN,
        {
            "input": {
                "partner": "skyway",
                "member": {"id": giver},
                "points": 500,
                "idempotencyKey": "g-e",
            }
        },
    )
    await ok(gateway, GIFT, {"input": {**gift, "points": 100, "idempotencyKey": "g"}})
    service = PrivacyService(gateway.service)
    uuid = decode_member_id(member)
    assert uuid is not None
    whole = await service.export(uuid, limit=None)
    assert whole["complete"] is True
    assert [t["kind"] for t in whole["transfers"]] == ["earn"] * 5 + ["conversion", "gift"]
    ids = [t["id"] for t in whole["transfers"]]
    assert ids == sorted(ids)
    cut = await service.export(uuid, limit=3)
    assert cut["complete"] is False and [t["id"] for t in cut["transfers"]] == ids[:3]
    exact = await service.export(uuid, limit=7)
    assert exact["complete"] is True and len(exact["transfers"]) == 7


async def test_a_sign_in_claiming_an_erased_customer_id_does_not_reach_the_erased_member(
    sso: Gateway, brands: Brands
):
    token = brands.token("skyway", "bob", skyway_member="SKY-77")
    erased = (await sso.gql("{ me { id } }", token=token))["data"]["me"]["id"]
    fresh = brands.token("skyway", "bob", auth_time=int(CLOCK().timestamp()) - 60)
    assert codes(payload(await sso.gql(ERASE, {"id": erased}, token=fresh))) == []
    async with sso.service.engine.connect() as connection:
        pseudonym = await connection.scalar(
            sa.text("SELECT customer_id FROM enrolments WHERE partner = 'skyway'")
        )
    assert pseudonym.startswith("erased:")
    # A provider (mis)configured to send it, in any case, signs a new person in as such,
    # enrolled nowhere: the erased member is not reached.
    for claimed in (pseudonym, pseudonym.upper()):
        other = brands.token("skyway", f"eve-{claimed[-4:]}", skyway_member=claimed)
        me = (await sso.gql(MY_ENROLMENTS, token=other))["data"]["me"]
        assert me["id"] != erased and me["enrolments"] == []
