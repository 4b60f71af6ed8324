"""The audit trail of accounts, with real sign-in providers on loopback: sign-in (success
and refusal, member and operator), sign-out, link, merge, unlink; spends by a member and a
reversal by an operator person name them; a member reads the entries about their own
account, and only those."""

from __future__ import annotations

from typing import Any

from gateway.api.graphql.scalars import decode_member_id
from gateway.auth.providers import COALITION
from tests.conftest import Gateway
from tests.operations import ERRORS, REDEEM, REVERSE, payload
from tests.sso import Brands, sign_in
from tests.test_audit import ENTRY, MADE_BY, actor, made_by, trail
from tests.test_sign_in import (
    arrive,
    bearer_member,
    begin,
    browser_gql,
    complete_link,
    deny,
    earn,
    enrol,
    merge_alice,
    my_id,
    my_identity_ids,
    start_link,
    unlink,
)

MINE = f"""
query($first: Int!, $after: String) {{
  myAuditTrail(first: $first, after: $after) {{ edges {{ node {{ {ENTRY} }} }} }}
}}"""
CONVERT = f"""
mutation($input: ConvertPointsInput!) {{
  convertPoints(input: $input) {{ transfer {{ id }} {ERRORS} }}
}}"""


def member_actor(member: str) -> tuple[str, str, None]:
    return "MEMBER", f"member:{decode_member_id(member)}", None


async def test_sign_in_and_sign_out_name_the_member_and_the_provider(sso: Gateway):
    await sign_in(sso, "skyway", "bob")
    member = await my_id(sso)
    (entry,) = await trail(sso, action="sign_in")
    assert actor(entry) == member_actor(member) and entry["outcome"] == "OK"
    assert entry["memberId"] == member and entry["partner"] == "skyway"
    assert entry["requestId"]
    assert (await sso.client.post("/auth/logout")).status_code == 204
    (entry,) = await trail(sso, action="sign_out")
    assert actor(entry) == member_actor(member) and entry["memberId"] == member


async def test_a_refused_sign_in_is_recorded_as_anonymous(sso: Gateway):
    response = await arrive(sso, await deny(await begin(sso, "/auth/login/skyway")))
    assert response.status_code == 400
    (entry,) = await trail(sso, action="sign_in")
    assert actor(entry) == ("ANONYMOUS", "anonymous", None)
    assert entry["outcome"] == "DENIED" and entry["detail"] == "SIGN_IN_CANCELLED"
    assert entry["partner"] == "skyway" and entry["memberId"] is None


async def test_an_operator_signing_in_is_an_operator_person(sso: Gateway):
    await sign_in(sso, COALITION, "olivia")
    (entry,) = await trail(sso, action="sign_in")
    assert actor(entry) == ("OPERATOR", "operator:olivia", None)
    assert entry["partner"] is None and entry["memberId"] is None


async def test_link_merge_and_unlink_name_the_member(sso: Gateway):
    a, b = await merge_alice(sso)
    (link,) = await trail(sso, action="link")
    assert actor(link) == member_actor(a) and link["outcome"] == "OK"
    assert link["memberId"] == a and link["partner"] == "brewbar"
    merged = await trail(sso, action="member.merged")
    assert merged and {actor(e) for e in merged} == {member_actor(a)}
    assert {e["memberId"] for e in merged} == {a}
    # The person's whole trail, from either id: the retired member's earlier entries too.
    for member in (a, b):
        whole = await trail(sso, memberId=member)
        assert {e["memberId"] for e in whole} == {a, b}
    mine = (await member_trail(sso))["data"]["myAuditTrail"]["edges"]
    assert {(e["node"]["action"], e["node"]["memberId"]) for e in mine} >= {
        ("points.earned", b),
        ("points.earned", a),
        ("link", a),
    }

    result = await unlink(sso, (await my_identity_ids(sso))["brewbar"])
    assert result["userErrors"] == []
    (entry,) = await trail(sso, action="unlinkIdentity")
    assert actor(entry) == member_actor(a) and entry["outcome"] == "OK"
    assert entry["memberId"] == a
    assert entry["target"] == {"kind": "member", "id": decode_member_id(a)}
    refused = await unlink(sso, (await my_identity_ids(sso))["skyway"])
    assert [e["code"] for e in refused["userErrors"]] == ["LAST_IDENTITY"]
    latest = (await trail(sso, action="unlinkIdentity"))[0]
    assert latest["outcome"] == "REJECTED" and latest["detail"] == "LAST_IDENTITY"


async def test_a_members_spends_and_an_operators_reversal_name_them(sso: Gateway, brands: Brands):
    member = await enrol(sso, "skyway", "SKY-1001")
    await earn(sso, "skyway", member, 840, "sky-receipt")
    alice = brands.token("skyway", "alice")  # carries SKY-1001: the same member
    variables = {
        "input": {
            "partner": "skyway",
            "member": {"id": member},
            "points": 40,
            "idempotencyKey": "a",
        }
    }
    redeemed = payload(await sso.gql(REDEEM, variables, token=alice))
    assert redeemed["userErrors"] == [], redeemed
    convert = {
        "memberId": member,
        "fromPartner": "skyway",
        "toPartner": "brewbar",
        "points": 400,
        "idempotencyKey": "c",
    }
    converted = payload(await sso.gql(CONVERT, {"input": convert}, token=alice))
    assert converted["userErrors"] == [], converted
    await sso.settle_events()
    for transfer in (redeemed["transfer"]["id"], converted["transfer"]["id"]):
        by = await made_by(sso, transfer)
        assert (by["actor"]["kind"], by["actor"]["id"]) == member_actor(member)[:2]
    (entry,) = await trail(sso, action="points.converted")
    assert actor(entry) == member_actor(member)

    olivia = brands.token(COALITION, "olivia")
    undo = {"transferId": redeemed["transfer"]["id"], "idempotencyKey": "undo"}
    reversal = payload(await sso.gql(REVERSE, {"input": undo}, token=olivia))["reversal"]
    await sso.settle_events()
    by = await made_by(sso, reversal["id"])
    # The member sees that an operator reversed it; operators see which one.
    mine = (await sso.gql(MADE_BY, {"id": reversal["id"]}, token=alice))["data"]["node"]
    assert mine["madeBy"]["actor"] == {
        "kind": "OPERATOR",
        "id": "operator",
        "partner": None,
        "clientId": None,
    }
    assert by["actor"] == {
        "kind": "OPERATOR",
        "id": "operator:olivia",
        "partner": None,
        "clientId": None,
    }


async def member_trail(gateway: Gateway, token: str | None = None) -> Any:
    await gateway.settle_events()
    if token is not None:
        return await gateway.gql(MINE, {"first": 100}, token=token, errors=True)
    return await browser_gql(gateway, MINE, {"first": 100})


async def test_a_member_reads_the_entries_about_their_own_account_only(
    sso: Gateway, brands: Brands
):
    bob = await enrol(sso, "skyway", "SKY-7")
    await earn(sso, "skyway", bob, 10, "bob-1")
    await sign_in(sso, "skyway", "alice")
    alice = await my_id(sso)
    await earn(sso, "skyway", alice, 25, "alice-1")
    body = await member_trail(sso)
    entries = [edge["node"] for edge in body["data"]["myAuditTrail"]["edges"]]
    # Newest recorded first: her enrolment at sign-in came through the event log after.
    assert sorted(e["action"] for e in entries) == ["member.enrolled", "points.earned", "sign_in"]
    enrolled = next(e for e in entries if e["action"] == "member.enrolled")
    assert actor(enrolled) == member_actor(alice)
    assert {e["memberId"] for e in entries} == {alice}
    # Only operators read the whole trail.
    refused = await sso.client.post(
        "/graphql",
        json={"query": "{ auditTrail(first: 1) { edges { cursor } } }"},
        headers={"accept": "application/json"},
    )
    assert refused.json()["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"
    # An operator has no account of their own.
    mine = await member_trail(sso, token=await sso.operator_token())
    assert mine["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"


async def test_a_native_link_is_recorded_even_when_it_merges(sso: Gateway, brands: Brands):
    other = await bearer_member(sso, brands.token("brewbar", "bob"))
    bob = brands.token("skyway", "bob")
    member = await bearer_member(sso, bob)
    nonce = await start_link(sso, bob)
    result = await complete_link(sso, bob, brands.token("brewbar", "bob", nonce=nonce))
    assert result["userErrors"] == [] and result["mergedMemberIds"] == [other]
    actions = [e["action"] for e in await trail(sso, memberId=member)]
    assert "completeAccountLink" in actions and "startAccountLink" in actions
    assert "member.merged" in actions
    (entry,) = await trail(sso, action="completeAccountLink")
    assert actor(entry) == member_actor(member) and entry["outcome"] == "OK"
