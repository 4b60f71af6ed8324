"""A log line per request (JSON in production), with its request id, operation, caller,
partner, latency and outcome; stdlib records rendered the same way."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.api.observability.logs import configure_logging
from gateway.api.observability.requests import OPERATIONS
from gateway.api.settings import Settings
from gateway.jobs.runner import JobRunner, Sweep
from gateway.kernel.sealing import new_master_key
from tests.conftest import Gateway
from tests.operations import ENROL

OPERATIONS.label("Enrol")  # a label before the per-process cap fills, whatever runs first


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """What the process logs, as JSON lines (the production format)."""
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    try:
        yield stream
    finally:
        configure_logging("console")


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def requests(stream: io.StringIO) -> list[dict[str, Any]]:
    return [line for line in lines(stream) if line.get("event") == "request"]


async def test_a_partner_request_is_one_json_line(gateway: Gateway, output: io.StringIO):
    token = await gateway.partner_token("skyway")
    response = await gateway.client.post(
        "/graphql",
        json={
            "query": "mutation Enrol($input: EnrolMemberInput!) "
            + ENROL.split("mutation($input: EnrolMemberInput!)", 1)[1],
            "variables": {"input": {"partner": "skyway", "partnerCustomerId": "L-1"}},
        },
        headers={"authorization": f"Bearer {token}", "x-request-id": "till-42:receipt-7"},
    )
    assert response.status_code == 200 and "errors" not in response.json()
    assert response.headers["x-request-id"] == "till-42:receipt-7"
    (line,) = requests(output)
    assert line["request_id"] == "till-42:receipt-7"
    assert line["operation"] == "Enrol" and line["operation_type"] == "mutation"
    assert (line["caller"], line["partner"]) == ("partner", "skyway")
    assert (line["outcome"], line["status"], line["method"]) == ("ok", 200, "POST")
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["level"] == "info" and line["logger"] == "gateway.access"
    assert line["timestamp"].endswith("Z")


async def test_a_refused_request_and_a_bad_request_id(gateway: Gateway, output: io.StringIO):
    response = await gateway.client.post(
        "/graphql", json={"query": "{ partners { slug } }"}, headers={"x-request-id": "a b;c"}
    )
    assert response.status_code == 401
    made = response.headers["x-request-id"]
    assert made != "a b;c" and len(made) == 32  # ill-formed: replaced by one of ours
    long = await gateway.client.get("/livez", headers={"x-request-id": "x" * 129})
    assert len(long.headers["x-request-id"]) == 32
    (line,) = requests(output)  # probes are not logged
    assert line["request_id"] == made
    assert (line["caller"], line["outcome"], line["status"]) == ("anonymous", "rejected", 401)
    assert line["operation"] == "unparsed"
    assert "partner" not in line


async def test_stdlib_records_and_job_runs_share_the_renderer(
    gateway: Gateway, output: io.StringIO
):
    logging.getLogger("gateway.example").warning("partner %s is slow", "skyway")
    (line,) = lines(output)
    assert line == {
        "event": "partner skyway is slow",
        "level": "warning",
        "logger": "gateway.example",
        "timestamp": line["timestamp"],
    }
    await gateway.gql(ENROL, {"input": {"partner": "skyway", "partnerCustomerId": "L-2"}})
    await gateway.settle_events()
    runs = {line["job"]: line for line in lines(output) if line["event"] == "job run"}
    assert set(runs) == {
        "challenges.awards",
        "analytics.daily",
        "webhooks.fanout",
        "audit.events",
    }  # one line per consumer
    run = runs["challenges.awards"]
    assert (run["kind"], run["outcome"]) == ("consumer", "ok")
    assert run["events"] >= 1 and run["duration_ms"] >= 0


def test_console_lines_in_the_demo_json_in_production() -> None:
    assert Settings.from_env({}).log_format == "console"
    production = {
        "COALITION_ENV": "production",
        "COALITION_SESSION_SECRET": "s" * 32,
        "COALITION_MASTER_KEY": new_master_key(),
    }
    assert Settings.from_env(production).log_format == "json"
    stream = io.StringIO()
    configure_logging("console", stream=stream)
    try:
        logging.getLogger("gateway.example").info("hello")
    finally:
        configure_logging("console")
    text = stream.getvalue()
    assert "hello" in text and "gateway.example" in text and not text.startswith("{")


async def test_a_sweep_that_did_work_is_logged(gateway: Gateway, output: io.StringIO):
    async def found_three() -> int:
        return 3

    async def found_nothing() -> int:
        return 0

    runner = JobRunner(gateway.service.uow)
    assert await runner.sweep(Sweep("test.found_three", found_three, every=0))
    assert await runner.sweep(Sweep("test.found_nothing", found_nothing, every=0))
    (run,) = [line for line in lines(output) if line["event"] == "job run"]
    assert (run["job"], run["kind"], run["result"]) == ("test.found_three", "sweep", 3)
