"""Audit trail at /console/audit: a signed-in operator gets the page and its script, whose
query (the one the page sends, taken from the script) answers with the filters the form
gives; anyone else is refused the page."""

from __future__ import annotations

import re

from graphql import parse, validate

from gateway.api.graphql.schema import schema
from gateway.auth.providers import COALITION
from tests.conftest import Gateway
from tests.sso import as_browser, sign_in
from tests.test_sign_in import earn, enrol


async def test_the_audit_page_and_its_query_for_a_signed_in_operator(sso: Gateway):
    member = await enrol(sso, "skyway", "SKY-9")
    await earn(sso, "skyway", member, 15, "receipt-9")
    await sso.settle_events()
    await sign_in(sso, COALITION, "olivia")
    page = await sso.client.get("/console/audit", headers={"accept": "text/html"})
    assert page.status_code == 200 and "Kind of actor" in page.text
    assert '<script src="/console/static/audit.js"' in page.text
    assert 'href="/console/audit"' in page.text  # in the navigation
    script = (await sso.client.get("/console/static/audit.js")).text
    found = re.search(r"const QUERY = `(.*?)`;", script, re.S)
    assert found, script
    query = found.group(1)
    assert validate(schema._schema, parse(query)) == []
    variables = {"filter": {"memberId": member, "actorKind": "OPERATOR_CLIENT"}, "after": None}
    answer = (await as_browser(sso, query, variables)).json()
    assert "errors" not in answer, answer
    actions = [e["node"]["action"] for e in answer["data"]["auditTrail"]["edges"]]
    assert actions == ["points.earned", "member.enrolled"]


async def test_a_member_is_refused_the_audit_page(sso: Gateway):
    await sign_in(sso, "skyway", "bob")
    page = await sso.client.get("/console/audit", headers={"accept": "text/html"})
    assert page.status_code == 403
