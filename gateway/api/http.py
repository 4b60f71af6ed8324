"""The GraphQL endpoint, following the GraphQL-over-HTTP specification.

Clients that accept ``application/graphql-response+json`` get it, with 400 for a request
that fails to parse or validate and 200 once execution starts; clients that only accept
``application/json`` get 200 for every well-formed request, as the specification says.
Malformed HTTP requests get 400, 405, 406, 413 or 415 with a GraphQL-shaped error body.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import strawberry
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from gateway.api.faults import ServiceFailure
from gateway.api.graphql.context import Context
from gateway.api.graphql.errors import INTERNAL_SERVER_ERROR, formatted
from gateway.api.graphql.persisted import PersistedQueries, PersistedQueryError
from gateway.api.observability import requests
from gateway.api.observability.metrics import record_graphql_errors

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


class BadRequest(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.code = code


def _media_ranges(header: str) -> list[tuple[str, float]]:
    ranges = []
    for part in header.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media:
            ranges.append((media.lower(), quality))
    return ranges


def negotiate(accept: str | None) -> str | None:
    """The response media type for an Accept header; None when we can offer none."""
    if not accept or not accept.strip():
        return JSON  # legacy clients that send no Accept header
    best: tuple[float, int, str] | None = None
    for media, quality in _media_ranges(accept):
        if quality <= 0:
            continue
        if media == GRAPHQL_RESPONSE:
            candidate = (quality, 2, GRAPHQL_RESPONSE)
        elif media in (JSON, "application/*", "*/*"):
            candidate = (quality, 1, JSON)
        else:
            continue
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return best[2] if best else None


def _error_body(message: str, code: str | None = None) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code or "BAD_REQUEST"}}]}


def _service_failures(result: ExecutionResult) -> list[ServiceFailure]:
    return [
        error.original_error
        for error in result.errors or ()
        if isinstance(error.original_error, ServiceFailure)
    ]


class GraphQLEndpoint:
    def __init__(
        self,
        schema: strawberry.Schema,
        context: Callable[[Request], Awaitable[Context]],
        max_body_bytes: int = 4 * 1024 * 1024,
        ide: Callable[[Request], Awaitable[Response]] | None = None,
    ) -> None:
        """``context`` authenticates the request; it raises BadRequest(401) when it can't.
        ``ide`` answers a browser's GET without a query (GraphiQL); None: no IDE."""
        self.schema = schema
        self.context = context
        self.max_body_bytes = max_body_bytes
        self.ide = ide
        self.persisted = PersistedQueries()

    async def handle(self, request: Request) -> Response:
        if self.ide is not None and self._wants_ide(request):
            return await self.ide(request)
        media_type = negotiate(request.headers.get("accept"))
        record = requests.current()
        if record is not None:
            record.graphql = True
        try:
            if media_type is None:
                raise BadRequest(406, f"Accept {GRAPHQL_RESPONSE} or {JSON}.")
            context = await self.context(request)
            params = await self._params(request)
            return await self._execute(request, params, media_type, context)
        except BadRequest as error:
            if record is not None:
                record.outcome = "error" if error.status >= 500 else "rejected"
            return JSONResponse(
                _error_body(error.message, error.code),
                status_code=error.status,
                headers=error.headers,
                media_type=media_type or JSON,
            )

    @staticmethod
    def _wants_ide(request: Request) -> bool:
        return (
            request.method == "GET"
            and "query" not in request.query_params
            and "text/html" in request.headers.get("accept", "")
        )

    async def _params(self, request: Request) -> dict[str, Any]:
        if request.method == "GET":
            raw: dict[str, Any] = dict(request.query_params)
            for name in ("variables", "extensions"):
                if name in raw:
                    raw[name] = self._json(raw[name], name)
        else:
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != JSON:
                raise BadRequest(415, f"Send the request body as {JSON}.")
            declared = request.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
                raise BadRequest(
                    413, f"The request body is larger than {self.max_body_bytes} bytes."
                )
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > self.max_body_bytes:
                    raise BadRequest(
                        413, f"The request body is larger than {self.max_body_bytes} bytes."
                    )
            raw = self._json(body, "body")
        if not isinstance(raw, dict):
            raise BadRequest(
                400, "The request body must be a JSON object (batching is not offered)."
            )
        extensions = raw.get("extensions")
        if isinstance(extensions, dict) and extensions.get("persistedQuery") is not None:
            try:
                raw["query"] = self.persisted.query(extensions["persistedQuery"], raw.get("query"))
            except PersistedQueryError as error:
                raise BadRequest(error.status, error.message, code=error.code) from None
        query = raw.get("query")
        if not isinstance(query, str) or not query.strip():
            raise BadRequest(400, "The request has no `query` string.")
        for name in ("variables", "extensions"):
            if raw.get(name) is not None and not isinstance(raw[name], dict):
                raise BadRequest(400, f"`{name}` must be a JSON object.")
        operation = raw.get("operationName")
        if operation is not None and not isinstance(operation, str):
            raise BadRequest(400, "`operationName` must be a string.")
        return raw

    @staticmethod
    def _json(text: str | bytes, what: str) -> Any:
        try:
            return json.loads(text)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise BadRequest(400, f"The {what} is not valid JSON.") from None

    async def _execute(
        self, request: Request, params: dict[str, Any], media_type: str, context: Context
    ) -> Response:
        allowed = {OperationType.QUERY}
        if request.method == "POST":
            allowed.add(OperationType.MUTATION)
        try:
            result = await self.schema.execute(
                params["query"],
                variable_values=params.get("variables"),
                context_value=context,
                operation_name=params.get("operationName"),
                allowed_operation_types=allowed,
            )
        except InvalidOperationTypeError:
            raise BadRequest(
                405, "Mutations are only accepted with POST.", {"Allow": "POST"}
            ) from None
        except CannotGetOperationTypeError as error:
            raise BadRequest(400, error.as_http_error_reason()) from None
        except MissingQueryError:
            raise BadRequest(400, "The request has no `query` string.") from None
        body, request_error = self._body(result)
        status = 400 if request_error and media_type == GRAPHQL_RESPONSE else 200
        headers = {}
        failures = _service_failures(result)
        if failures:
            # Retryable: say when; and 503 when the failure left nothing answered.
            headers["Retry-After"] = str(max(failure.retry_after for failure in failures))
            if not any((result.data or {}).values()):
                status = 503
        _observe(body, request_error, bool(failures))
        return Response(
            json.dumps(body, separators=(",", ":")),
            status_code=status,
            headers=headers,
            media_type=f"{media_type}; charset=utf-8",
        )

    @staticmethod
    def _body(result: ExecutionResult) -> tuple[dict[str, Any], bool]:
        errors: list[GraphQLError] = list(result.errors or [])
        request_error = isinstance(result, PreExecutionError) or (
            result.data is None and bool(errors) and all(e.path is None for e in errors)
        )
        body: dict[str, Any] = {}
        if not request_error:
            body["data"] = result.data
        if errors:
            body["errors"] = [formatted(error, request_error) for error in errors]
        return body, request_error


def _observe(body: dict[str, Any], request_error: bool, failed: bool) -> None:
    """The request's outcome: ``rejected`` (refused before execution), ``error`` (the
    server's fault or a service failure), ``user_error`` (a typed error, or userErrors in
    a payload) or ``ok``."""
    codes = [str(error["extensions"]["code"]) for error in body.get("errors", ())]
    record_graphql_errors(codes)
    record = requests.current()
    if record is None:
        return
    if request_error:
        record.outcome = "rejected"
    elif failed or INTERNAL_SERVER_ERROR in codes:
        record.outcome = "error"
    elif codes or record.user_errors:
        record.outcome = "user_error"
    else:
        record.outcome = "ok"
