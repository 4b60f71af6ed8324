"""The browser flow: sign in, link another brand's sign-in, sign out.

``/auth/login/{provider}`` and ``/auth/link/{provider}`` start an authorization-code flow
with PKCE (S256), ``state`` and ``nonce``; the flow is stored server-side (hashed) and
bound to the browser by a signed cookie, and ``/auth/callback/{provider}`` uses it once.
"""

from __future__ import annotations

import hmac
import html
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy.exc import DBAPIError
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from gateway.api.auditing import Attempt, actor_of, record, record_callback
from gateway.api.authenticate import (
    FLOW_COOKIE,
    SESSION_COOKIE,
    Authenticator,
    authenticated_at,
    proof_of,
)
from gateway.api.graphql.scalars import encode_id
from gateway.audit.entries import Actor
from gateway.audit.trail import AuditTrail
from gateway.auth.errors import InvalidToken
from gateway.auth.principal import MemberPrincipal, OperatorPrincipal
from gateway.auth.providers import Provider
from gateway.events.actor import set_actor
from gateway.kernel.errors import DomainError
from gateway.kernel.unit_of_work import Contention
from gateway.members.identity import IdentityService
from gateway.members.records import FlowUse
from gateway.members.rules import FLOW_LIFETIME, fresh_for_link, recently_signed_in, step_up_from

if TYPE_CHECKING:
    from gateway.api.authentication import AuthSystem

log = logging.getLogger("gateway.auth")

DEFAULT_RETURN = "/graphql"


class AuthRoutes:
    def __init__(
        self,
        system: AuthSystem,
        public_url: str,
        secure_cookies: bool,
        session_lifetime: timedelta,
    ) -> None:
        self.system = system
        self.public_url = public_url
        self.secure = secure_cookies
        self.session_lifetime = session_lifetime

    def routes(self) -> list[Route]:
        return [
            Route("/auth/login/{provider}", self.login, methods=["GET"]),
            Route("/auth/link/{provider}", self.link, methods=["GET"]),
            Route("/auth/callback/{provider}", self.callback, methods=["GET"]),
            Route("/auth/logout", self.logout_page, methods=["GET"]),
            Route("/auth/logout", self.logout, methods=["POST"]),
            Route("/auth/me", self.me, methods=["GET"]),
        ]

    # Helpers

    @property
    def auth(self) -> Authenticator:
        assert self.system.authenticator is not None, "the app has not started"
        return self.system.authenticator

    @property
    def identity(self) -> IdentityService:
        assert self.system.identity is not None, "the app has not started"
        return self.system.identity

    def _provider(self, request: Request) -> Provider | None:
        return self.auth.providers.get(request.path_params["provider"])

    def _redirect_uri(self, provider: Provider) -> str:
        return f"{self.public_url}/auth/callback/{provider.name}"

    @staticmethod
    def _return_to(request: Request) -> str:
        """Only a path on this gateway: never an open redirect."""
        value = request.query_params.get("return_to", DEFAULT_RETURN)
        parts = urlsplit(value)
        if (
            not value.startswith("/")
            or value.startswith("//")
            or "\\" in value
            or parts.scheme
            or parts.netloc
            or len(value) > 500
        ):
            return DEFAULT_RETURN
        return value

    def _cookie(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            self.auth.sign(name, value),
            max_age=max_age,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.secure,
        )

    def _forget(self, response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", httponly=True, samesite="lax", secure=self.secure)

    @staticmethod
    def _page(status: int, title: str, message: str) -> HTMLResponse:
        body = (
            f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
            '<p><a href="/graphql">Back to the gateway</a></p>'
        )
        return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    async def _start(self, request: Request, purpose: str, member_id: str | None) -> Response:
        provider = self._provider(request)
        if provider is None:
            return self._page(404, "Unknown provider", "No partner signs in by that name.")
        try:
            authorize = await provider.endpoint("authorization_endpoint")
        except InvalidToken as error:
            return self._page(502, "Sign-in unavailable", error.reason)
        flow = await self.identity.start_flow(
            purpose, provider.name, member_id, self._return_to(request)
        )
        url = add_params_to_uri(
            authorize,
            [
                ("response_type", "code"),
                ("client_id", provider.client_id),
                ("redirect_uri", self._redirect_uri(provider)),
                ("scope", provider.sign_in.scope),
                ("state", flow.state),
                ("nonce", flow.nonce),
                ("code_challenge", create_s256_code_challenge(flow.code_verifier)),
                ("code_challenge_method", "S256"),
                # A link must be a fresh sign-in, not a provider session left open.
                *([("prompt", "login"), ("max_age", "0")] if purpose == "link" else []),
            ],
        )
        response = RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
        self._cookie(response, FLOW_COOKIE, flow.state, int(FLOW_LIFETIME.total_seconds()))
        return response

    # Routes

    async def login(self, request: Request) -> Response:
        return await self._start(request, "sign_in", None)

    async def link(self, request: Request) -> Response:
        principal = await self.auth.session_principal(request)
        if not isinstance(principal, MemberPrincipal):
            return self._page(401, "Sign in first", "Sign in before linking another account.")
        if not recently_signed_in(principal, self.identity.clock()):
            return self._page(
                401,
                "Sign in again",
                "Linking an account needs a sign-in from the last 10 minutes: sign out, "
                "sign in again, then link.",
            )
        return await self._start(request, "link", principal.member_id)

    async def callback(self, request: Request) -> Response:
        provider = self._provider(request)
        if provider is None:
            return self._page(404, "Unknown provider", "No partner signs in by that name.")
        state = request.query_params.get("state", "")
        cookie = request.cookies.get(FLOW_COOKIE)
        lifetime = int(FLOW_LIFETIME.total_seconds())
        bound = self.auth.unsign(FLOW_COOKIE, cookie, lifetime) if cookie else None
        attempt = Attempt()
        if not state or bound is None or not hmac.compare_digest(state, bound):
            await self._audit(provider.name, attempt, "denied", "STATE_MISMATCH")
            return self._page(400, "Sign-in refused", "The sign-in state does not match.")
        try:
            response = await self._finish(request, provider, state, attempt)
        except (Contention, DBAPIError) as error:
            await self._audit(provider.name, attempt, "failed", type(error).__name__)
            # The database failed us after the gateway's own retries; the flow was not used
            # up (its sign-in or link did not commit), nothing happened: say to try again.
            log.warning("callback of %s failed: %r", provider.name, error)
            page = self._page(
                503, "Try again", "The gateway is busy and could not finish; nothing was changed."
            )
            page.headers["Retry-After"] = "1"
            return page
        if response.status_code == 303:
            await self._audit(provider.name, attempt, "ok", None)
        else:
            await self._audit(provider.name, attempt, "denied", attempt.why)
        return response

    async def _audit(self, provider: str, attempt: Attempt, outcome: str, why: str | None) -> None:
        await record_callback(self.identity, provider, attempt, outcome, why)

    async def _refuse(self, state: str, title: str, message: str, attempt: Attempt) -> Response:
        """A refused callback uses its flow up: it cannot succeed later."""
        await self.identity.finish_flow(state)
        page = self._page(400, title, message)
        attempt.why = title.upper().replace(" ", "_").replace("-", "_")  # SIGN_IN_CANCELLED...
        return page

    async def _finish(
        self, request: Request, provider: Provider, state: str, attempt: Attempt
    ) -> Response:
        """The callback once the browser's flow matched: the flow is used up by the sign-in
        or link that succeeds, or by a refusal."""
        flow = await self.identity.pending_flow(state)
        if flow is None or flow.provider != provider.name:
            return await self._refuse(
                state, "Sign-in refused", "This sign-in was already used or expired.", attempt
            )
        issuer = request.query_params.get("iss")
        if issuer is not None and issuer != provider.issuer:
            return await self._refuse(
                state, "Sign-in refused", "The answer came from another issuer.", attempt
            )
        if "error" in request.query_params:
            reason = request.query_params.get("error", "")[:64]
            return await self._refuse(
                state, "Sign-in cancelled", f"The provider answered: {reason}.", attempt
            )
        code = request.query_params.get("code")
        if not code:
            return await self._refuse(
                state, "Sign-in refused", "The provider sent no code.", attempt
            )
        try:
            claims = await self._exchange(provider, code, flow.code_verifier, flow.nonce)
        except InvalidToken as error:
            return await self._refuse(state, "Sign-in refused", error.reason, attempt)
        proof = proof_of(provider, claims)
        mfa = provider.shows_mfa(claims)
        use = FlowUse(state)
        if flow.purpose == "link":
            attempt.action = "link"
            principal = await self.auth.session_principal(request)
            if isinstance(principal, MemberPrincipal):
                attempt.actor, attempt.member_id = actor_of(principal), principal.member_id
                set_actor(principal.actor)  # of the merge's events
            if not isinstance(principal, MemberPrincipal) or principal.member_id != flow.member_id:
                return await self._refuse(
                    state, "Link refused", "Finish the link in the session that began it.", attempt
                )
            if not fresh_for_link(authenticated_at(claims), flow.created_at):
                return await self._refuse(
                    state,
                    "Link refused",
                    "The provider did not show a fresh sign-in for this link.",
                    attempt,
                )
            try:
                linked = await self.identity.link(principal.member_id, proof, use)
            except Contention:
                raise
            except DomainError as error:
                return await self._refuse(state, "Link refused", error.message, attempt)
            attempt.merged = len(linked.merged)
            back = flow.return_to or DEFAULT_RETURN
            # A page that asks to hear of the link (?linked=<brand>, as /account does) is
            # told too whether another member was merged in: their points moved over.
            if linked.merged and "linked" in parse_qs(urlsplit(back).query):
                back = add_params_to_uri(back, [("merged", str(len(linked.merged)))])
            response: Response = RedirectResponse(back, 303)
            self._forget(response, FLOW_COOKIE)
            return response
        operator = provider.is_operator(claims)
        member_id, waits = None, None
        try:
            if operator:
                attempt.actor = Actor("operator", f"operator:{proof.subject}")
            else:
                member_id = (await self.identity.sign_in(proof)).member_id
                attempt.actor, attempt.member_id = Actor("member", f"member:{member_id}"), member_id
                identity = await self.identity.linked(proof.issuer, proof.subject)
                waits = step_up_from(identity) if identity else None
            token = await self.identity.open_session(
                member_id,
                operator,
                proof.issuer,
                proof.subject,
                mfa,
                self.session_lifetime,
                waits,
                use,
            )
        except Contention:
            raise
        except DomainError as error:
            return await self._refuse(state, "Sign-in refused", error.message, attempt)
        response = RedirectResponse(flow.return_to or DEFAULT_RETURN, 303)
        self._cookie(response, SESSION_COOKIE, token, int(self.session_lifetime.total_seconds()))
        self._forget(response, FLOW_COOKIE)
        return response

    async def _exchange(
        self, provider: Provider, code: str, verifier: str | None, nonce: str
    ) -> dict[str, Any]:
        endpoint = await provider.endpoint("token_endpoint")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self._redirect_uri(provider),
        }
        if verifier:
            form["code_verifier"] = verifier
        try:
            response = await provider.post_form(endpoint, form)
            answer = response.json()
        except (httpx.HTTPError, ValueError):
            raise InvalidToken("the provider's token endpoint did not answer") from None
        if response.status_code != 200 or not isinstance(answer, dict):
            error = answer.get("error") if isinstance(answer, dict) else None
            log.info("provider %s refused the code: %s", provider.name, error)
            raise InvalidToken(f"the provider refused the code ({str(error)[:40]})")
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise InvalidToken("the provider sent no ID token")
        return await provider.verify(id_token, nonce=nonce)

    async def logout(self, request: Request) -> Response:
        cookie = request.cookies.get(SESSION_COOKIE)
        token = self.auth.unsign(SESSION_COOKIE, cookie, 10**9) if cookie else None
        if token is not None:
            principal = await self.auth.session_principal(request)
            await self.identity.close_session(token)
            if principal is not None:
                member_id = getattr(principal, "member_id", None)
                at, trail = self.identity.clock(), AuditTrail(self.identity.uow)
                await record(trail, at, actor_of(principal), "sign_out", member_id=member_id)
        response: Response
        if "text/html" in request.headers.get("accept", ""):
            response = RedirectResponse("/", 303)  # a browser's form
        else:
            response = Response(status_code=204)
        self._forget(response, SESSION_COOKIE)
        return response

    async def logout_page(self, request: Request) -> Response:
        """GET shows a button: a link or image on another site cannot sign anyone out."""
        body = (
            "<!doctype html><meta charset=utf-8><title>Sign out</title><h1>Sign out</h1>"
            '<form method="post" action="/auth/logout"><button>Sign out</button></form>'
        )
        return HTMLResponse(body, headers={"Cache-Control": "no-store"})

    async def me(self, request: Request) -> Response:
        """Who the session cookie signs in, for pages and scripts."""
        principal = await self.auth.session_principal(request)
        if isinstance(principal, MemberPrincipal):
            member = encode_id("Member", principal.member_id)
            body: dict[str, Any] = {"role": "member", "memberId": member}
        elif isinstance(principal, OperatorPrincipal):
            body = {"role": "operator", "subject": principal.subject}
        else:
            return JSONResponse({"role": None}, status_code=401)
        return JSONResponse(
            {**body, "issuer": principal.issuer, "mfa": getattr(principal, "mfa", False)}
        )
