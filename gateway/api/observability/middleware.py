"""Per request: a request id (the caller's ``X-Request-ID`` when well-formed, echoed in the
response), the request metrics and a log line."""

from __future__ import annotations

import time

import structlog
from opentelemetry import trace
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.observability import requests, tracing
from gateway.api.observability.logs import access_logger
from gateway.api.observability.metrics import record_request
from gateway.events.actor import RequestTrace, begin_request, current_actor, end_request

QUIET = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})  # counted, not logged
UNMATCHED = "unmatched"


class ObserveRequests:
    def __init__(self, app: ASGIApp, request_log: bool = True) -> None:
        self.app = app
        self.request_log = request_log
        self.log = access_logger()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = requests.request_id(Headers(scope=scope).get("x-request-id"))
        record = requests.RequestRecord(request_id)
        status = 500  # unless a response starts: an exception escaped

        async def respond(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        token = requests.begin(record)
        traced = begin_request(RequestTrace(request_id))  # the events it appends carry it
        nobody = current_actor.set(None)  # until the request's caller is known
        bound = structlog.contextvars.bind_contextvars(request_id=request_id)
        span = tracing.server_span(scope["method"], Headers(scope=scope))
        start = time.perf_counter()
        try:
            with trace.use_span(span, end_on_exit=False):
                await self.app(scope, receive, respond)
        finally:
            seconds = time.perf_counter() - start
            template = self._observe(scope, record, status, seconds)
            tracing.finish(span, record, template, scope["method"], status)
            structlog.contextvars.reset_contextvars(**bound)
            current_actor.reset(nobody)
            end_request(traced)
            requests.end(token)

    def _observe(
        self, scope: Scope, record: requests.RequestRecord, status: int, seconds: float
    ) -> str:
        """Record the request's metrics and log line; its route's template."""
        route = scope.get("route")
        template: str = getattr(route, "path", None) or UNMATCHED
        record_request(record, template, scope["method"], status, seconds)
        if not self.request_log or scope["path"] in QUIET:
            return template
        outcome = record.outcome if record.graphql and record.outcome else None
        fields = dict(
            method=scope["method"],
            path=scope["path"][:200],
            route=template,
            status=status,
            operation=record.operation if record.graphql else None,
            operation_type=record.operation_type,
            caller=record.caller,
            partner=record.partner,
            outcome=outcome or requests.outcome_of(status),
            user_errors=record.user_errors or None,
            duration_ms=round(seconds * 1000, 2),
        )
        self.log.info("request", **{k: v for k, v in fields.items() if v is not None})
        return template
