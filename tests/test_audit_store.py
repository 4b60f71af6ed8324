"""The audit store: a member's entries for the data export (its `auditEntries` section),
JSON-safe and free of personal data; the transfer loader's ``made_by``."""

from __future__ import annotations

import json

from gateway.api.graphql.scalars import decode_int_id, decode_member_id
from gateway.audit.trail import AuditTrail
from tests.conftest import Gateway
from tests.test_api import earn, enrol
from tests.test_privacy import EXPORT


async def test_about_member_gives_json_safe_entries_without_personal_data(gateway: Gateway):
    member = await enrol(gateway, customer="SECRET-CUSTOMER-7")
    other = await enrol(gateway, customer="C-2")
    transfer = (await earn(gateway, member, 120, "receipt-for-jane"))["transfer"]["id"]
    await earn(gateway, other, 5, "x")
    await gateway.settle_events()
    trail = AuditTrail(gateway.service.uow)
    member_id = decode_member_id(member)
    assert member_id is not None

    found = await trail.about_member([member_id])
    text = json.dumps(found)  # JSON-safe as it is
    assert [entry["action"] for entry in found] == ["member.enrolled", "points.earned"]
    assert "SECRET-CUSTOMER-7" not in text and "receipt-for-jane" not in text
    assert found[1]["data"] == {"kind": "earn", "points": 120}
    assert found[1]["actor"] == "operator:test-operator" and found[1]["clientId"] == "test-operator"

    number = decode_int_id(transfer, "Transfer")
    assert number is not None
    by = await trail.made_by([number, 999_999])
    assert list(by) == [number] and by[number].actor.kind == "operator_client"


async def test_a_members_data_export_includes_their_audit_entries(gateway: Gateway):
    member = await enrol(gateway, customer="C-1")
    await earn(gateway, member, 40, "r-1")
    await gateway.settle_events()
    body = await gateway.gql(EXPORT, {"id": member})
    document = body["data"]["exportMemberData"]["data"]
    entries = document["auditEntries"]
    assert [e["action"] for e in entries] == ["member.enrolled", "points.earned"]
    assert entries[1]["data"] == {"kind": "earn", "points": 40}
