"""enrolMember and earnPoints over HTTP: the GraphQL documents and how their answers are read."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.client import HttpConnection, graphql_request
from bench.measurement import Attempt, drive
from bench.workload import PARTNERS, Earn, Member

ENROL = """
mutation Enrol($input: EnrolMemberInput!) {
  enrolMember(input: $input) { member { id } userErrors { code message } }
}
"""
EARN = """
mutation Earn($input: EarnPointsInput!) {
  earnPoints(input: $input) {
    transfer { id points }
    wallet { balance }
    userErrors { code field message }
  }
}
"""


def member_uuid(global_id: str) -> str:
    """The member id in the database: the node id inside the relay global id."""
    type_name, _, node_id = base64.b64decode(global_id).decode().partition(":")
    if type_name != "Member" or not node_id:
        raise ValueError(f"not a Member global id: {global_id!r}")
    return node_id


def payload_of(status: int, body: bytes, field: str) -> tuple[dict[str, Any] | None, str | None]:
    """The mutation's payload from an answer, or what went wrong."""
    if status != 200:
        return None, f"HTTP {status}: {body[:300]!r}"
    document = json.loads(body)
    payload = (document.get("data") or {}).get(field)
    if document.get("errors") or payload is None:
        return None, f"GraphQL errors: {document.get('errors')}"
    if payload["userErrors"]:
        return None, f"userErrors: {payload['userErrors']}"
    return payload, None


@dataclass(frozen=True)
class Enrolment:
    partner: str
    customer_id: str

    def __str__(self) -> str:
        return f"{self.partner}/{self.customer_id}"


async def enrol_all(
    connections: Sequence[HttpConnection],
    port: int,
    token: str,
    count: int,
    partners: Sequence[str] = PARTNERS,
    prefix: str = "bench",
) -> dict[str, list[Member]]:
    """``count`` members at each partner, by partner; stops the run when any failed."""
    jobs = [
        Enrolment(partner, f"{prefix}-{partner}-{index:06d}")
        for index in range(count)
        for partner in partners
    ]
    found: dict[Enrolment, Member] = {}

    def attempt_on(connection: HttpConnection) -> Attempt[Enrolment]:
        async def enrol(job: Enrolment) -> tuple[float, str | None]:
            variables = {"input": {"partner": job.partner, "partnerCustomerId": job.customer_id}}
            request = graphql_request(port, token, ENROL, variables)
            took, status, body = await connection.exchange(request)
            payload, problem = payload_of(status, body, "enrolMember")
            if payload is None:
                return took, problem
            if payload["member"] is None:
                return took, "no member in the payload"
            global_id = payload["member"]["id"]
            found[job] = Member(global_id, member_uuid(global_id))
            return took, None

        return enrol

    started = time.perf_counter()
    _, failures = await drive([attempt_on(connection) for connection in connections], jobs)
    if failures:
        raise RuntimeError(f"{len(failures)} enrolments failed, e.g. {failures[:3]}")
    elapsed = time.perf_counter() - started
    print(f"  enrolled {len(jobs)} members in {elapsed:.1f} s ({len(jobs) / elapsed:.0f}/s)")
    return {partner: [found[job] for job in jobs if job.partner == partner] for partner in partners}


@dataclass(frozen=True)
class EarnCall:
    """An earn with its HTTP request already serialised."""

    earn: Earn
    request: bytes

    def __str__(self) -> str:
        return str(self.earn)


def earn_calls(port: int, token: str, earns: Sequence[Earn]) -> list[EarnCall]:
    calls = []
    for earn in earns:
        variables = {
            "input": {
                "partner": earn.partner,
                "member": {"id": earn.member.global_id},
                "idempotencyKey": earn.key,
                "points": earn.points,
            }
        }
        calls.append(EarnCall(earn, graphql_request(port, token, EARN, variables)))
    return calls


def earn_problem(status: int, body: bytes, earn: Earn) -> str | None:
    payload, problem = payload_of(status, body, "earnPoints")
    if payload is None:
        return problem
    if payload["transfer"] is None:
        return "no transfer in the payload"
    if payload["transfer"]["points"] != earn.points:
        return f"transfer of {payload['transfer']['points']} points, not {earn.points}"
    return None


def gateway_attempt(connection: HttpConnection) -> Attempt[EarnCall]:
    async def attempt(call: EarnCall) -> tuple[float, str | None]:
        took, status, body = await connection.exchange(call.request)
        return took, earn_problem(status, body, call.earn)

    return attempt
