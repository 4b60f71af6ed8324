"""OpenTelemetry tracing through its API alone: a server span per request, continuing the
caller's W3C ``traceparent``, named by its GraphQL operation. The gateway installs no SDK:
run it under one (``opentelemetry-instrument coalition serve``, with opentelemetry-distro and
an exporter, configured by the ``OTEL_*`` variables) to record and export spans. Without
one, the API's spans record nothing and cost a few microseconds a request."""

from __future__ import annotations

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from starlette.datastructures import Headers

from gateway.api.observability import requests

TRACER = trace.get_tracer("gateway")


def server_span(method: str, headers: Headers) -> trace.Span:
    """The request's span, not yet current (``trace.use_span`` makes it so)."""
    parent = propagate.extract(headers)
    return TRACER.start_span(method, context=parent, kind=SpanKind.SERVER)


def finish(
    span: Span, record: requests.RequestRecord, route: str, method: str, status: int
) -> None:
    """Name the span and give it what the request turned out to be, then end it."""
    if span.is_recording():
        name = f"{method} {route}"
        if record.graphql:
            name = f"{record.operation_type or 'graphql'} {record.operation}"
            span.set_attribute("graphql.operation.name", record.operation)
            if record.operation_type:
                span.set_attribute("graphql.operation.type", record.operation_type)
            if record.outcome:
                span.set_attribute("coalition.outcome", record.outcome)
        span.update_name(name)
        span.set_attribute("http.request.method", method)
        span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        span.set_attribute("coalition.request_id", record.request_id)
        if record.caller:
            span.set_attribute("coalition.caller", record.caller)
        if record.partner:
            span.set_attribute("coalition.partner", record.partner)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
    span.end()
