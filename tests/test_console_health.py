"""Jobs & health at /console/health: the operators' `operations` query tells consumers' lag,
remote operations still pending at a partner and the latest import jobs."""

from __future__ import annotations

from typing import Any

from gateway.auth.providers import COALITION
from partners.development.reference_faults import BY_KEY, TRANSACTIONS
from partners.development.reference_partner import ReferencePartner
from tests.conftest import Gateway
from tests.sso import as_browser, sign_in
from tests.test_imports import earns_csv, run_jobs, upload
from tests.test_remote_operations import (  # noqa: F401
    earn,
    gw,
    member_at_northjet,
    northjet,
    served,
)

OPERATIONS = """{ operations(first: 5) { checkedAt
  consumers { name lagEvents lagSeconds oldestWaitingAt }
  remoteOperations { status count }
  pendingRemoteOperations { kind remotePartner remotePoints attempts lastError lastAttemptAt }
  imports { updatedAt job { source status posted partner { slug } } } } }"""


async def operations(gateway: Gateway, token: str | None = None) -> dict[str, Any]:
    body = await gateway.gql(OPERATIONS, token=token, errors=token is not None)
    return body


async def test_an_operator_sees_lag_pending_remote_operations_and_imports(
    gw: Gateway, northjet: ReferencePartner
):
    quiet = (await operations(gw))["data"]["operations"]
    assert quiet["pendingRemoteOperations"] == [] and quiet["imports"] == []
    assert [c["name"] for c in quiet["consumers"]] == [
        "challenges.awards",
        "analytics.daily",
        "webhooks.fanout",
        "audit.events",
    ]

    member = await member_at_northjet(gw)
    northjet.fail_next(TRANSACTIONS, "error", times=2)
    northjet.fail_next(BY_KEY, "error")
    unknown = await earn(gw, member, 100, "k-1", "northjet")
    assert [e["code"] for e in unknown["userErrors"]] == ["PARTNER_UNAVAILABLE"]
    uploaded = await upload(gw, earns_csv(["c0,k,1,"]), await gw.partner_token("brewbar"))
    assert uploaded.status_code == 202, uploaded.text
    await run_jobs(gw)

    now = (await operations(gw))["data"]["operations"]
    (pending,) = now["pendingRemoteOperations"]
    assert pending["kind"] == "earn" and pending["remotePartner"] == "northjet"
    assert pending["remotePoints"] == 100 and pending["attempts"] == 1 and pending["lastError"]
    assert {"status": "pending", "count": 1} in now["remoteOperations"]
    (job,) = now["imports"]
    assert job["job"]["source"] == "night.csv" and job["job"]["partner"]["slug"] == "brewbar"
    assert job["job"]["status"] in ("DONE", "FAILED") and job["updatedAt"]
    assert len(now["consumers"]) == 4
    for consumer in now["consumers"]:
        assert consumer["lagEvents"] >= 0 and consumer["lagSeconds"] >= 0


async def test_only_operators_read_operations(gw: Gateway):
    body = await operations(gw, await gw.partner_token("brewbar"))
    assert body["data"] is None or body["data"]["operations"] is None
    assert body["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"


async def test_the_health_page_and_its_query_for_a_signed_in_operator(sso: Gateway):
    await sign_in(sso, COALITION, "olivia")
    page = await sso.client.get("/console/health", headers={"accept": "text/html"})
    assert page.status_code == 200 and "Event consumers" in page.text
    assert '<script src="/console/static/health.js"' in page.text
    script = await sso.client.get("/console/static/health.js")
    assert script.status_code == 200 and "operations(first: 20)" in script.text
    answer = (await as_browser(sso, OPERATIONS)).json()
    assert "errors" not in answer and answer["data"]["operations"]["consumers"]
