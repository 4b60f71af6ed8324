"""OpenTelemetry: under an SDK each request is a server span continuing the caller's trace,
named by its GraphQL operation (the gateway itself only uses the API: without an SDK nothing
is recorded)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.conftest import Gateway
from tests.test_api import enrol

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
EARN = """
mutation Earn($member: ID!) {
  earnPoints(input: {partner: "skyway", member: {id: $member}, points: 25,
                     idempotencyKey: "traced-1"}) { wallet { balance } userErrors { code } }
}"""


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # the process's, once: as an SDK's set-up does
    yield exporter
    provider.shutdown()


async def test_a_request_continues_the_callers_trace(gateway: Gateway, spans):
    member = await enrol(gateway)
    token = await gateway.partner_token("skyway")
    spans.clear()
    response = await gateway.client.post(
        "/graphql",
        json={"query": EARN, "variables": {"member": member}},
        headers={
            "authorization": f"Bearer {token}",
            "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01",
            "x-request-id": "trace-me",
        },
    )
    assert response.json()["data"]["earnPoints"]["userErrors"] == []
    (span,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert span.name == "mutation Earn"
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_ID
    attributes = dict(span.attributes or {})
    assert attributes["graphql.operation.name"] == "Earn"
    assert attributes["coalition.outcome"] == "ok"
    assert attributes["coalition.caller"] == "partner"
    assert attributes["coalition.partner"] == "skyway"
    assert attributes["http.response.status_code"] == 200
    assert attributes["coalition.request_id"] == "trace-me"

    spans.clear()
    assert (await gateway.client.get("/readyz")).status_code == 200
    (probe,) = spans.get_finished_spans()
    assert probe.name == "GET /readyz" and probe.parent is None  # a trace of its own
