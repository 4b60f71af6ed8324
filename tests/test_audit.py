"""The audit trail over HTTP, on SQLite and PostgreSQL: who did what, on what, with which
outcome and request id; effects from the event log, everything else directly; filters and
pages; who may read it; the database refuses to change or delete an entry."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.api.graphql.scalars import decode_id, decode_int_id
from gateway.audit.tables import audit_entries
from gateway.expiry.service import ExpiryService
from gateway.jobs.runner import JobRunner, Sweep
from tests.conftest import Gateway
from tests.operations import EARN, ENROL, ERRORS, REVERSE, payload
from tests.test_api import earn, enrol
from tests.test_rewards import reward
from tests.test_settlement import close

ENTRY = """
  occurredAt action outcome detail requestId memberId partner
  actor { kind id partner clientId } target { kind id }
"""
TRAIL = f"""
query($filter: AuditTrailFilter, $first: Int!, $after: String) {{
  auditTrail(filter: $filter, first: $first, after: $after) {{
    edges {{ cursor node {{ {ENTRY} }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
MADE_BY = """
query($id: ID!) { node(id: $id) { ... on Transfer {
  madeBy { requestId actor { kind id partner clientId } } } } }"""
UPDATE_PARTNER = f"""
mutation($input: UpdatePartnerInput!) {{
  updatePartner(input: $input) {{ change {{ number }} {ERRORS} }}
}}"""


async def post(
    gw: Gateway, query: str, variables: dict[str, Any], token: str, request_id: str | None = None
) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}", "accept": "application/json"}
    if request_id is not None:
        headers["x-request-id"] = request_id
    response = await gw.client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def trail(gw: Gateway, first: int = 100, **filter: Any) -> list[dict[str, Any]]:
    """The trail as the operator sees it, once the consumers caught up, newest first."""
    await gw.settle_events()
    body = await gw.gql(TRAIL, {"filter": filter or None, "first": first})
    return [edge["node"] for edge in body["data"]["auditTrail"]["edges"]]


def actor(entry: dict[str, Any]) -> tuple[str, str, str | None]:
    return entry["actor"]["kind"], entry["actor"]["id"], entry["actor"]["clientId"]


async def made_by(gw: Gateway, transfer: str) -> dict[str, Any]:
    found: dict[str, Any] = (await gw.gql(MADE_BY, {"id": transfer}))["data"]["node"]["madeBy"]
    return found


async def partner_earn(gw: Gateway, token: str, member: str, key: str, rid: str) -> dict[str, Any]:
    variables = {
        "input": {
            "partner": "skyway",
            "member": {"id": member},
            "points": 500,
            "idempotencyKey": key,
        }
    }
    return payload(await post(gw, EARN, variables, token, rid))


async def test_an_earn_names_the_partner_app_its_client_and_the_request(gateway: Gateway):
    token = await gateway.partner_token("skyway")
    enrolled = payload(
        await post(
            gateway,
            ENROL,
            {"input": {"partner": "skyway", "partnerCustomerId": "C-1"}},
            token,
            "till-1:enrol",
        )
    )
    member = enrolled["member"]["id"]
    earned = await partner_earn(gateway, token, member, "r-1", "till-42:receipt-7")
    assert earned["userErrors"] == []
    transfer = earned["transfer"]["id"]

    (entry,) = await trail(gateway, action="points.earned")
    assert actor(entry) == ("PARTNER_CLIENT", "partner:skyway", "skyway-test")
    assert entry["actor"]["partner"] == "skyway"
    assert entry["requestId"] == "till-42:receipt-7" and entry["outcome"] == "OK"
    assert entry["memberId"] == member and entry["partner"] == "skyway"
    assert entry["target"]["kind"] == "transfer"
    (enrolment,) = await trail(gateway, action="member.enrolled")
    assert enrolment["requestId"] == "till-1:enrol" and enrolment["memberId"] == member
    # The posting was recorded by its event alone: no second entry for the mutation.
    assert await trail(gateway, action="earnPoints") == []
    assert await trail(gateway, action="enrolMember") == []

    by = await made_by(gateway, transfer)
    assert by["requestId"] == "till-42:receipt-7"
    assert by["actor"] == {
        "kind": "PARTNER_CLIENT",
        "id": "partner:skyway",
        "partner": "skyway",
        "clientId": "skyway-test",
    }


async def test_a_reversal_names_the_operator_client_that_made_it(gateway: Gateway):
    member = await enrol(gateway)
    original = (await earn(gateway, member, 300, "r-1"))["transfer"]["id"]
    variables = {"input": {"transferId": original, "idempotencyKey": "undo-1"}}
    reversed_ = payload(await post(gateway, REVERSE, variables, await gateway.operator_token()))
    reversal = reversed_["reversal"]["id"]
    await gateway.settle_events()
    by = await made_by(gateway, reversal)
    assert (by["actor"]["kind"], by["actor"]["id"]) == ("OPERATOR_CLIENT", "operator:test-operator")
    assert by["actor"]["clientId"] == "test-operator" and by["requestId"]
    (entry,) = await trail(gateway, action="transfer.reversed")
    assert entry["memberId"] == member and entry["target"]["kind"] == "transfer"


async def test_a_rejected_mutation_is_recorded_with_its_codes(gateway: Gateway):
    token = await gateway.partner_token("skyway")
    member = await enrol(gateway)
    earned = await partner_earn(gateway, token, member, "r-1", "rid-1")
    transfer = earned["transfer"]["id"]
    variables = {"input": {"transferId": transfer, "idempotencyKey": "u", "points": 10**9}}
    refused = payload(await post(gateway, REVERSE, variables, token, "rid-2"))
    assert [e["code"] for e in refused["userErrors"]] == ["AMOUNT_OUT_OF_BOUNDS"]

    (entry,) = await trail(gateway, action="reverseTransfer")
    assert entry["outcome"] == "REJECTED" and entry["detail"] == "AMOUNT_OUT_OF_BOUNDS"
    assert actor(entry) == ("PARTNER_CLIENT", "partner:skyway", "skyway-test")
    assert entry["target"] == {"kind": "transfer", "id": transfer_number(transfer)}
    assert entry["requestId"] == "rid-2" and entry["partner"] == "skyway"


def transfer_number(global_id: str) -> str:
    return str(decode_int_id(global_id, "Transfer"))


async def test_a_denied_mutation_is_recorded_as_denied(gateway: Gateway):
    member = await enrol(gateway)
    brewbar = await gateway.partner_token("brewbar")
    refused = await partner_earn(gateway, brewbar, member, "r-1", "rid-9")
    assert [e["code"] for e in refused["userErrors"]] == ["ACCESS_DENIED"]
    (entry,) = await trail(gateway, action="earnPoints")
    assert entry["outcome"] == "DENIED" and entry["detail"] == "ACCESS_DENIED"
    assert actor(entry) == ("PARTNER_CLIENT", "partner:brewbar", "brewbar-test")
    assert entry["memberId"] == member and entry["requestId"] == "rid-9"
    assert await trail(gateway, action="points.earned") == []


async def test_a_mutation_that_fails_unexpectedly_is_recorded_as_failed(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
):
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(gateway.service, "enrol", broken)
    token = await gateway.partner_token("skyway")
    variables = {"input": {"partner": "skyway", "partnerCustomerId": "SKY-77"}}
    body = await post(gateway, ENROL, variables, token, "rid-fire")
    assert body["data"]["enrolMember"] is None
    assert "disk" not in str(body)  # masked: the caller learns nothing of the server
    (entry,) = await trail(gateway, action="enrolMember")
    assert entry["outcome"] == "FAILED" and entry["detail"] == "RuntimeError"
    assert actor(entry) == ("PARTNER_CLIENT", "partner:skyway", "skyway-test")
    assert entry["requestId"] == "rid-fire" and "SKY-77" not in str(entry)


async def test_a_mutation_that_posts_nothing_is_recorded_directly(gateway: Gateway):
    reward_id = await reward(gateway, "brewbar")
    (entry,) = await trail(gateway, action="createReward")
    assert entry["outcome"] == "OK" and entry["partner"] == "brewbar"
    assert entry["target"] == {"kind": "reward", "id": decode_id(reward_id, "Reward")}
    assert actor(entry)[0] == "OPERATOR_CLIENT"


async def test_an_idempotent_replay_is_recorded_directly(gateway: Gateway):
    member = await enrol(gateway)
    await earn(gateway, member, 100, "same")
    replay = await earn(gateway, member, 100, "same")
    assert replay["idempotentReplay"] is True
    assert [e["action"] for e in await trail(gateway, action="earnPoints")] == ["earnPoints"]
    assert len(await trail(gateway, action="points.earned")) == 1


async def test_a_configuration_change_and_a_settlement_close_name_the_operator(gateway: Gateway):
    variables = {"input": {"partner": "skyway", "settings": {"name": "SkyWay Air"}}}
    changed = payload(await gateway.gql(UPDATE_PARTNER, variables))
    assert changed["userErrors"] == [], changed
    (entry,) = await trail(gateway, action="configuration.changed")
    assert actor(entry)[:2] == ("OPERATOR_CLIENT", "operator:test-operator")
    assert entry["target"] == {
        "kind": "configuration_change",
        "id": str(changed["change"]["number"]),
    }

    gateway.clock.now += timedelta(days=2)
    closed = await close(gateway, (gateway.clock.now - timedelta(days=1)).isoformat())
    assert closed["userErrors"] == [], closed
    (entry,) = await trail(gateway, action="settlement.closed")
    assert actor(entry)[:2] == ("OPERATOR_CLIENT", "operator:test-operator")
    assert entry["target"]["kind"] == "settlement_period"


async def test_a_jobs_effect_names_the_job(gateway: Gateway):
    member = await enrol(gateway)
    await earn(gateway, member, 100, "r-1")
    gateway.clock.now += timedelta(days=40 * 31)  # skyway's points expire after 36 months
    expiry = ExpiryService(gateway.service)
    # The runner's own loop, which names its job as the actor of what it posts.
    runner = JobRunner(gateway.service.uow, [], [Sweep("points.expire", expiry.expire_due, 0.05)])
    runner.start()
    try:
        async with asyncio.timeout(30):
            while not await trail(gateway, action="points.expired"):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        await runner.stop()
    entries = await trail(gateway, action="points.expired")
    assert entries, "the demo's skyway points expire"
    assert {actor(e) for e in entries} == {("JOB", "system:points.expire", None)}
    assert entries[0]["memberId"] == member


async def test_filters_and_pages(gateway: Gateway):
    first_member = await enrol(gateway, customer="C-1")
    other = await enrol(gateway, customer="C-2")
    for number in range(3):
        await earn(gateway, first_member, 10, f"a-{number}")
    gateway.clock.now += timedelta(hours=1)
    since = gateway.clock.now.isoformat()
    await earn(gateway, other, 10, "b-0")

    mine = await trail(gateway, memberId=first_member)
    assert [e["action"] for e in mine] == ["points.earned"] * 3 + ["member.enrolled"]
    assert [e["memberId"] for e in await trail(gateway, since=since)] == [other]
    assert len(await trail(gateway, until=since, action="points.earned")) == 3
    assert len(await trail(gateway, actorKind="OPERATOR_CLIENT")) == 6
    assert await trail(gateway, actor="partner:skyway") == []

    seen: list[str] = []
    after = None
    while True:
        body = await gateway.gql(TRAIL, {"filter": None, "first": 2, "after": after})
        page = body["data"]["auditTrail"]
        seen += [edge["node"]["memberId"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == 6 and seen[0] == other


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"first": 101}, "`first` must be between 0 and 100"),
        ({"first": 5, "after": "bm9wZQ=="}, "not a cursor"),
        ({"first": 5, "filter": {"memberId": "nope"}}, "not a member's global id"),
        (
            {
                "first": 5,
                "filter": {"since": "2026-06-02T00:00:00Z", "until": "2026-06-01T00:00:00Z"},
            },
            "`since` must be before `until`",
        ),
        ({"first": 5, "filter": {"action": "x" * 201}}, "printable characters"),
    ],
)
async def test_bad_arguments_are_clear_errors(
    gateway: Gateway, variables: dict[str, Any], message: str
):
    body = await gateway.gql(TRAIL, variables, errors=True)
    (error,) = body["errors"]
    assert message in error["message"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


async def test_only_operators_read_the_whole_trail(gateway: Gateway):
    token = await gateway.partner_token("skyway")
    body = await post(gateway, TRAIL, {"first": 5}, token)
    assert body["data"] is None or body["data"].get("auditTrail") is None
    assert body["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"
    body = await post(gateway, "{ myAuditTrail { edges { cursor } } }", {}, token)
    assert body["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"


async def test_the_database_refuses_to_change_or_delete_an_entry(gateway: Gateway):
    await reward(gateway, "brewbar")
    await gateway.settle_events()
    engine = gateway.service.engine
    for statement in (
        sa.update(audit_entries).values(outcome="failed"),
        sa.delete(audit_entries),
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            async with engine.begin() as connection:
                await connection.execute(statement)
    async with engine.connect() as connection:
        outcomes = (await connection.execute(sa.select(audit_entries.c.outcome))).scalars().all()
    assert outcomes == ["ok"]


BULK = f"""
mutation($input: EarnPointsBulkInput!) {{
  earnPointsBulk(input: $input) {{ succeeded failed {ERRORS} }}
}}"""


async def test_a_batch_of_earns_names_its_client_and_request_on_every_line(gateway: Gateway):
    members = [await enrol(gateway, customer=f"C-{n}") for n in range(3)]
    lines = [
        {"member": {"id": member}, "points": 10 + n, "idempotencyKey": f"k-{n}"}
        for n, member in enumerate(members)
    ]
    token = await gateway.partner_token("skyway")
    variables = {"input": {"partner": "skyway", "lines": lines}}
    result = payload(await post(gateway, BULK, variables, token, "pos-batch-1"))
    assert result["succeeded"] == 3, result
    entries = await trail(gateway, action="points.earned")
    assert len(entries) == 3
    assert {(e["requestId"], *actor(e)) for e in entries} == {
        ("pos-batch-1", "PARTNER_CLIENT", "partner:skyway", "skyway-test")
    }
    assert {e["memberId"] for e in entries} == set(members)
    assert await trail(gateway, action="earnPointsBulk") == []


async def test_an_import_upload_names_the_partner_app_and_its_job_posts_the_earns(
    gateway: Gateway,
):
    await enrol(gateway, customer="c0")
    token = await gateway.partner_token("skyway")
    body = b"customer_id,idempotency_key,points\nc0,k-1,5\n"
    response = await gateway.client.post(
        "/imports/earns?partner=skyway&name=night.csv",
        content=body,
        headers={
            "content-type": "text/csv",
            "authorization": f"Bearer {token}",
            "x-request-id": "upload-1",
        },
    )
    assert response.status_code == 202, response.text
    (entry,) = await trail(gateway, action="imports.upload")
    assert actor(entry) == ("PARTNER_CLIENT", "partner:skyway", "skyway-test")
    assert entry["requestId"] == "upload-1" and entry["target"]["kind"] == "import"
    assert entry["partner"] == "skyway"
