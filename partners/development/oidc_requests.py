"""Requests to the development provider: parameters, authorization requests, redirects."""

from __future__ import annotations

import re
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from starlette.responses import RedirectResponse, Response

from partners.development.oidc_pages import message_page

SCOPES = ("openid", "profile")
CONTROLS = frozenset({"subject", "other_subject", "mfa", "deny"})  # sign-in form, not OAuth
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # BASE64URL(SHA-256(verifier)), unpadded


@dataclass(frozen=True)
class AuthRequest:
    """A validated authorization request; ``params`` are echoed as hidden form fields."""

    client_id: str
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str | None
    params: list[tuple[str, str]]


def authorization_request(
    items: list[tuple[str, str]],
    status: int,
    *,
    clients: Container[str],
    require_pkce: bool,
    issuer: str,
    title: str,
) -> AuthRequest | Response:
    """Validate an authorization request (``items`` without the sign-in form's
    ``CONTROLS``) for one of ``clients``. Errors redirect with ``status`` when they may
    (``issuer`` names the provider in the redirect); else they are a page titled ``title``.
    """
    params: dict[str, str] = {}
    repeated: set[str] = set()
    kept: list[tuple[str, str]] = []
    for name, value in items:
        if name in CONTROLS:
            continue
        if name in params:
            repeated.add(name)
        params[name] = value
        kept.append((name, value))
    client_id = params.get("client_id", "")
    if "client_id" in repeated or client_id not in clients:
        message = f"No client is registered as {client_id!r}."
        return message_page(title, 400, "Unknown client", message)
    redirect_uri = params.get("redirect_uri", "")
    if "redirect_uri" in repeated or not is_web_url(redirect_uri):
        message = "The redirect_uri must be one absolute http or https URL without fragment."
        return message_page(title, 400, "Invalid redirect_uri", message)
    state = params.get("state")

    def refuse(error: str, description: str) -> Response:
        answer = {"error": error, "error_description": description}
        return authorization_response(issuer, redirect_uri, answer, state, status)

    scopes = params.get("scope", "").split()
    method = params.get("code_challenge_method")
    challenge = params.get("code_challenge")
    if repeated:
        return refuse("invalid_request", f"repeated parameters: {', '.join(sorted(repeated))}")
    if "response_type" not in params:
        return refuse("invalid_request", "response_type is missing")
    if params["response_type"] != "code":
        return refuse("unsupported_response_type", "only response_type=code is supported")
    if params.get("response_mode", "query") != "query":
        return refuse("invalid_request", "only response_mode=query is supported")
    if "openid" not in scopes:
        return refuse("invalid_scope", "the scope must include openid")
    if params.get("prompt") == "none":
        return refuse("login_required", "this provider keeps no sessions")
    if challenge is None and method is not None:
        return refuse("invalid_request", "code_challenge_method without code_challenge")
    if challenge is not None and method != "S256":
        return refuse("invalid_request", "code_challenge_method must be S256")
    if challenge is not None and not _CHALLENGE.fullmatch(challenge):
        return refuse("invalid_request", "code_challenge is not a BASE64URL SHA-256 digest")
    if challenge is None and require_pkce:
        return refuse("invalid_request", "PKCE is required: send code_challenge with S256")
    return AuthRequest(
        client_id=client_id,
        redirect_uri=redirect_uri,
        scope=" ".join(dict.fromkeys(s for s in scopes if s in SCOPES)),
        state=state,
        nonce=params.get("nonce") or None,
        code_challenge=challenge,
        params=kept,
    )


def authorization_response(
    issuer: str, redirect_uri: str, params: Mapping[str, str], state: str | None, status: int
) -> Response:
    """An authorization response: ``params``, ``state`` and ``iss`` (RFC 9207)."""
    extra = {**params, **({} if state is None else {"state": state}), "iss": issuer}
    return RedirectResponse(with_query(redirect_uri, extra), status)


def strings(items: Sequence[tuple[str, Any]]) -> list[tuple[str, str]]:
    """The parameters whose values are text (a form's files left out)."""
    return [(name, value) for name, value in items if isinstance(value, str)]


def single(items: Sequence[tuple[str, Any]]) -> tuple[dict[str, str], set[str]]:
    """The parameters as a dict, and the names that appear more than once."""
    params: dict[str, str] = {}
    repeated: set[str] = set()
    for name, value in strings(items):
        if name in params:
            repeated.add(name)
        params[name] = value
    return params, repeated


def is_web_url(uri: str) -> bool:
    """Whether ``uri`` is an absolute http(s) URL with a host and no fragment."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and "#" not in uri


def with_query(uri: str, params: Mapping[str, str]) -> str:
    """``uri`` with ``params`` appended to its query string."""
    if not params:
        return uri
    parts = urlsplit(uri)
    extra = urlencode(params)
    return urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))
