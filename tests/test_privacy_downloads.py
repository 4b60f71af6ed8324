"""The member's download (GET /account/export, and its link on /account) and the
operators' `coalition members export|erase`."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from gateway.api.cli import main
from gateway.api.graphql.scalars import decode_member_id
from tests.conftest import Gateway
from tests.operations import ENROL, codes, payload
from tests.sso import sign_in
from tests.test_audit import trail
from tests.test_privacy import EXPORT
from tests.test_sign_in import earn, my_id


async def test_a_member_downloads_their_data(sso: Gateway):
    assert (await sso.client.get("/account/export")).status_code == 401
    await sign_in(sso, "skyway", "alice")
    member = await my_id(sso)
    page = await sso.client.get("/account")
    assert 'href="/account/export"' in page.text
    answer = await sso.client.get("/account/export")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["content-disposition"].startswith("attachment; filename=")
    assert answer.headers["cache-control"] == "no-store"
    document = answer.json()
    assert document["format"] == 1 and document["member"]["id"] == decode_member_id(member)
    assert [e["customerId"] for e in document["enrolments"]] == ["SKY-1001"]
    # Who took the member's data, and when, is on the trail (the member's own too).
    (entry,) = await trail(sso, action="exportMyData")
    assert entry["actor"]["kind"] == "MEMBER" and entry["memberId"] == member
    assert entry["outcome"] == "OK" and entry["target"]["kind"] == "member"


async def test_the_cli_exports_and_erases(
    gateway: Gateway, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("DATABASE_URL", database_url)
    enrolled = payload(
        await gateway.gql(ENROL, {"input": {"partner": "skyway", "partnerCustomerId": "C-77"}})
    )
    member = enrolled["member"]["id"]
    await earn(gateway, "skyway", member, 40, "RCPT-77")
    out = tmp_path / "member.json"
    # A link left where the old way put its partial file is neither followed nor written.
    elsewhere = tmp_path / "member-elsewhere.json"
    (tmp_path / "member.json.part").symlink_to(elsewhere)
    uuid = decode_member_id(member)
    assert uuid is not None
    assert await asyncio.to_thread(main, ["members", "export", uuid, "--out", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["enrolments"][0]["customerId"] == "C-77" and document["complete"] is True
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    left = sorted(name for name in os.listdir(tmp_path) if name.startswith(("member", ".member")))
    assert left == ["member.json", "member.json.part"]  # and the link, not followed
    assert await asyncio.to_thread(main, ["members", "erase", member]) == 2  # no --yes
    assert await asyncio.to_thread(main, ["members", "erase", member, "--yes"]) == 0
    assert await asyncio.to_thread(main, ["members", "erase", member, "--yes"]) == 1
    assert await asyncio.to_thread(main, ["members", "export", "nobody"]) == 2
    (exported,) = await trail(gateway, action="members.export")
    assert exported["actor"]["id"].startswith("operator:cli") and exported["memberId"] == member
    after = payload(await gateway.gql(EXPORT, {"id": member}))
    assert codes(after) == [] and "C-77" not in json.dumps(after)
    assert after["data"]["member"]["erasure"]["erasedBy"].startswith("operator:cli")
