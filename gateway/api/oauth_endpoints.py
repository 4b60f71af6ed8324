"""HTTP endpoints of the gateway's own authorization server.

- ``POST /oauth/token``: the client-credentials grant (RFC 6749 section 4.4), form-encoded
  only, client authentication by HTTP Basic or by ``client_id``/``client_secret`` in the
  body (one of them); errors as RFC 6749 section 5.2 JSON.
- ``GET /.well-known/jwks.json``: the public signing keys.
- ``GET /.well-known/oauth-authorization-server``: RFC 8414 metadata.

Each reads the ``TokenIssuer`` from ``request.app.state.issuer``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.auth.errors import OAuthError
from gateway.auth.issuer import TokenIssuer
from gateway.auth.principal import OPERATOR_SCOPE, PARTNER_SCOPES

MAX_TOKEN_REQUEST_BYTES = 8 * 1024
FORM = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
REALM = 'Basic realm="coalition"'


def _issuer(request: Request) -> TokenIssuer:
    issuer: TokenIssuer = request.app.state.issuer
    return issuer


def _error(error: OAuthError) -> Response:
    headers = dict(NO_STORE)
    if error.status == 401:
        headers["WWW-Authenticate"] = REALM
    body = {"error": error.error, "error_description": error.description}
    return JSONResponse(body, status_code=error.status, headers=headers)


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_TOKEN_REQUEST_BYTES):
        raise OAuthError("invalid_request", "The request body is too large.", 413)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_TOKEN_REQUEST_BYTES:
                raise OAuthError("invalid_request", "The request body is too large.", 413)
    except ClientDisconnect:
        raise OAuthError("invalid_request", "The request body was cut short.") from None
    return bytes(body)


def _form(content_type: str, body: bytes) -> dict[str, str]:
    """The form parameters; refused when another media type, malformed, or repeated."""
    if content_type.split(";")[0].strip().lower() != FORM:
        raise OAuthError("invalid_request", f"The request body must be {FORM}.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "The request body is not a valid form.") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise OAuthError("invalid_request", f"The parameter {name!r} is repeated.")
        form[name] = value
    return form


def _basic_credentials(authorization: str) -> tuple[str, str]:
    """The client id and secret of an HTTP Basic header, each form-decoded (RFC 6749 2.3.1)."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise OAuthError("invalid_client", "Use HTTP Basic client authentication.", 401)
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "Malformed Basic credentials.", 401) from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise OAuthError("invalid_client", "Malformed Basic credentials.", 401)
    return unquote_plus(client_id), unquote_plus(secret)


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str]:
    authorization = request.headers.get("authorization")
    if authorization is not None:
        if "client_secret" in form:
            raise OAuthError("invalid_request", "Use one client authentication method, not two.")
        client_id, secret = _basic_credentials(authorization)
        if form.get("client_id", client_id) != client_id:
            raise OAuthError("invalid_request", "client_id differs from the Basic credentials.")
        return client_id, secret
    if "client_id" in form and "client_secret" in form:
        return form["client_id"], form["client_secret"]
    raise OAuthError("invalid_client", "Client authentication is required.", 401)


async def token(request: Request) -> Response:
    """The token endpoint: the client-credentials grant only."""
    try:
        form = _form(request.headers.get("content-type", ""), await _read_body(request))
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type is required.")
        if grant_type != "client_credentials":
            raise OAuthError("unsupported_grant_type", "Only client_credentials is supported.")
        client_id, secret = _client_credentials(request, form)
        issued = await _issuer(request).client_credentials(client_id, secret, form.get("scope"))
    except OAuthError as error:
        return _error(error)
    return JSONResponse(issued, headers=NO_STORE)


async def jwks(request: Request) -> Response:
    """The published public keys; clients refetch on an unknown ``kid``."""
    keys = await _issuer(request).keys.public_jwks()
    return JSONResponse(keys, headers={"Cache-Control": "public, max-age=300"})


def metadata_document(issuer: str) -> dict[str, Any]:
    """The RFC 8414 authorization server metadata for ``issuer``."""
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/oauth/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": [*sorted(PARTNER_SCOPES), OPERATOR_SCOPE],
        "response_types_supported": [],  # no authorization endpoint: no browser flows here
    }


async def metadata(request: Request) -> Response:
    document = metadata_document(_issuer(request).issuer)
    return JSONResponse(document, headers={"Cache-Control": "public, max-age=3600"})


def routes() -> list[BaseRoute]:
    return [
        Route("/oauth/token", token, methods=["POST"]),
        Route("/.well-known/jwks.json", jwks, methods=["GET"]),
        Route("/.well-known/oauth-authorization-server", metadata, methods=["GET"]),
    ]
