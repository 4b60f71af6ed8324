"""Authentication assembled from the settings: providers (bundled development ones
mounted under ``/dev/oidc/<name>``), cookie signing, the browser routes."""

from __future__ import annotations

import functools
import logging
import secrets
import ssl
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Mount
from starlette.types import Receive, Scope, Send

from gateway.api.authenticate import Authenticator
from gateway.api.settings import Settings, SettingsError
from gateway.auth.client_auth import ClientAuth, ClientAuthError, client_auth
from gateway.auth.issuer import TokenIssuer
from gateway.auth.providers import COALITION, Provider, Providers
from gateway.development.demo import DEMO_OPERATOR, DEMO_SIGN_INS
from gateway.ledger.service import LedgerService
from gateway.members.identity import IdentityService
from partners.config.coalition import Coalition
from partners.config.sign_in import SignIn
from partners.development.oidc_provider import DevProvider
from partners.development.oidc_users import DevUser

log = logging.getLogger("gateway.auth")

DEV_CLIENT_ID = "coalition-gateway"


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every provider client: loading the CA bundle takes ~25 ms."""
    return ssl.create_default_context()


def _sign_ins(coalition: Coalition) -> dict[str, SignIn]:
    found = {slug: p.sign_in for slug, p in coalition.partners.items() if p.sign_in is not None}
    if coalition.sign_in is not None:
        found[COALITION] = coalition.sign_in
    return found


def _demo_users(name: str, sign_in: SignIn) -> list[DevUser]:
    if name == COALITION:
        role = {sign_in.operator_claim or "roles": [sign_in.operator_role]}
        return [DevUser(DEMO_OPERATOR, "Olivia (coalition operator)", role)]
    claim = sign_in.customer_id_claim
    return [
        DevUser(subject, f"{person} ({customer_id})", {claim: customer_id} if claim else {})
        for subject, person, customer_id in DEMO_SIGN_INS.get(name, ())
    ]


class AuthSystem:
    def __init__(
        self, settings: Settings, coalition: Coalition, clock: Callable[[], datetime]
    ) -> None:
        self.settings = settings
        self.clock = clock
        secret = settings.session_secret
        if not secret:
            # Development only (production refuses to start without one): sessions end
            # when the process restarts.
            secret = secrets.token_urlsafe(32)
        self.secret = secret
        self.dev_secret = secrets.token_urlsafe(24)
        self.sign_ins: dict[str, SignIn] = {}
        self.dev_providers: dict[str, DevProvider] = {}
        self.authenticator: Authenticator | None = None
        self.identity: IdentityService | None = None
        self._clients: list[httpx.AsyncClient] = []
        self.configure(coalition)

    def check(self, coalition: Coalition) -> None:
        """Raise ``SettingsError`` unless every sign-in of ``coalition`` can be used here:
        its credentials are in the environment, and no development provider in production."""
        for name, sign_in in _sign_ins(coalition).items():
            if not sign_in.development:
                try:
                    self._client(name, sign_in)  # fail now, not at sign-in
                except ClientAuthError as error:
                    raise SettingsError(str(error)) from None
            elif self.settings.production:
                raise SettingsError(
                    f"sign-in for '{name}' uses the development provider, which production "
                    "refuses; configure its issuer"
                )

    def configure(self, coalition: Coalition) -> None:
        """Check the sign-ins of ``coalition`` and make the development providers it needs
        (those made before are kept, with the sign-ins they have under way)."""
        self.check(coalition)
        sign_ins = _sign_ins(coalition)
        for name, sign_in in sign_ins.items():
            if sign_in.development and name not in self.dev_providers:
                self.dev_providers[name] = DevProvider(
                    f"{self.settings.public_url}/dev/oidc/{name}",
                    {DEV_CLIENT_ID: self.dev_secret},
                    _demo_users(name, sign_in) if self.settings.demo_data else (),
                    title=f"{name}: development sign-in (demo only)",
                    clock=lambda: self.clock().timestamp(),
                )
        self.sign_ins = sign_ins

    def mounts(self) -> list[BaseRoute]:
        """The development providers, at ``/dev/oidc/<name>`` (outside production)."""
        if self.settings.production:
            return []
        return [Mount("/dev/oidc/{name}", app=self._development_provider)]

    async def _development_provider(self, scope: Scope, receive: Receive, send: Send) -> None:
        provider = self.dev_providers.get(scope["path_params"]["name"])
        if provider is None:
            await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
            return
        await provider.app(scope, receive, send)

    def _client(self, name: str, sign_in: SignIn) -> ClientAuth:
        if sign_in.development:
            method = sign_in.token_endpoint_auth_method
            return ClientAuth(method, DEV_CLIENT_ID, secret=self.dev_secret)
        return client_auth(name, sign_in.token_endpoint_auth_method, self.settings.oidc_credential)

    def _provider(self, app: Starlette, name: str, sign_in: SignIn) -> Provider:
        if sign_in.development:
            # The bundled provider answers in-process: no network hop, any port.
            http = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), timeout=5, verify=_tls()
            )
            issuer = self.dev_providers[name].issuer
        else:
            http = httpx.AsyncClient(timeout=5, follow_redirects=False, verify=_tls())
            assert sign_in.issuer is not None
            issuer = sign_in.issuer
        self._clients.append(http)
        return Provider(name, sign_in, issuer, self._client(name, sign_in), http, self.clock)

    def _providers(self, app: Starlette) -> Providers:
        try:
            return Providers(
                {name: self._provider(app, name, s) for name, s in self.sign_ins.items()}
            )
        except ClientAuthError as error:
            raise SettingsError(str(error)) from None

    def reconfigure(self, app: Starlette, coalition: Coalition) -> None:
        """Sign in with the providers of ``coalition`` from now on (a configuration change).
        The clients of the providers replaced stay open for requests under way; ``stop``
        closes them."""
        self.configure(coalition)
        if self.authenticator is not None:
            self.authenticator.providers = self._providers(app)

    def start(self, app: Starlette, service: LedgerService, issuer: TokenIssuer) -> None:
        providers = self._providers(app)
        self.identity = IdentityService(service, self.clock)
        self.authenticator = Authenticator(
            providers,
            issuer,
            self.identity,
            self.secret,
            int(timedelta(hours=self.settings.session_hours).total_seconds()),
        )

    async def stop(self) -> None:
        for client in self._clients:
            await client.aclose()
        self._clients.clear()
