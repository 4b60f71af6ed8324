"""Real OpenID Connect providers on loopback, one per brand plus the coalition's, and a
browser that signs in through them.

The providers are real HTTP servers (uvicorn on 127.0.0.1) shared by the whole run; the
gateway under test is configured with their issuer URLs, as production would be.
"""

from __future__ import annotations

import re
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from gateway.auth.providers import COALITION
from gateway.development.demo import DEMO_REMOTE_MEMBERS
from partners.config.coalition import DEMO_DIRECTORY
from partners.config.sign_in import env_name
from partners.development.oidc_provider import DevProvider, serve_in_thread
from partners.development.oidc_users import DevUser
from partners.development.reference_partner import ReferencePartner, serve_reference_in_thread
from tests.conftest import Clock, Gateway, core_text, start_gateway

CLAIMS = {
    "skyway": "skyway_member",
    "brewbar": "brewbar_card",
    "freshmart": "freshmart_card",
    "harbour": "harbour_guest",
}
USERS = {
    "skyway": [
        DevUser("alice", "Alice", {"skyway_member": "SKY-1001"}),
        DevUser("bob", "Bob", {}),
    ],
    "brewbar": [DevUser("alice", "Alice", {"brewbar_card": "BB-2002"}), DevUser("bob", "Bob", {})],
    "freshmart": [DevUser("carol", "Carol", {"freshmart_card": "FM-3003"})],
    "harbour": [DevUser("carol", "Carol", {"harbour_guest": "HH-4004"})],
    COALITION: [
        DevUser("olivia", "Olivia", {"roles": ["coalition-operator"]}),
        DevUser("mallory", "Mallory", {"roles": ["member"]}),
    ],
}
# The shared clock of the providers and of every SSO gateway: a test moves both at once.
CLOCK = Clock()


@dataclass
class Brands:
    """The providers, the configuration naming them, and the gateway's credentials."""

    providers: dict[str, DevProvider]
    config_dir: Path  # the core coalition (see conftest.core_text)
    credentials: tuple[tuple[str, str], ...]
    programme_dir: Path  # the whole demo: with its tiers and challenges

    def client_id(self, name: str) -> str:
        return dict(self.credentials)[f"{env_name(name)}_CLIENT_ID"]

    def token(self, name: str, subject: str, **claims: Any) -> str:
        """A token from a provider as it would issue one to the gateway, right after the
        person signed in there (``auth_time`` now; ``auth_time=None`` leaves it out)."""
        provider = self.providers[name]
        user_claims = {
            "auth_time": int(CLOCK().timestamp()),
            **next((u.claims for u in USERS[name] if u.subject == subject), {}),
            **claims,
        }
        return provider.mint(subject, self.client_id(name), claims=user_claims)


def _configure(
    directory: Path, issuers: dict[str, str], remote_url: str, whole: bool = False
) -> None:
    for file in DEMO_DIRECTORY.glob("*.toml"):
        text = file.read_text() if whole else core_text(file)
        name = COALITION if file.stem == "coalition" else file.stem
        # The first is the sign-in's. A remote pool's own `development = true` becomes a
        # partner service on loopback: these gateways also run in production, which
        # refuses a development pool.
        text = text.replace("development = true", f'issuer = "{issuers[name]}"', 1)
        text = text.replace("development = true", f'base_url = "{remote_url}"')
        (directory / file.name).write_text(text)


@pytest.fixture(scope="session")
def brands(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Brands]:
    names = [*CLAIMS, COALITION]
    credentials: dict[str, str] = {}
    providers: dict[str, DevProvider] = {}
    token = secrets.token_urlsafe(16)
    harbour = ReferencePartner(token, DEMO_REMOTE_MEMBERS["harbour"], open_enrolment=True)
    with (
        _serve_all(names, credentials, providers),
        serve_reference_in_thread(harbour) as harbour_url,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setenv("COALITION_REMOTE_HARBOUR_TOKEN", token)
        issuers = {name: p.issuer for name, p in providers.items()}
        directory = tmp_path_factory.mktemp("sso-config")
        _configure(directory, issuers, harbour_url)
        whole = tmp_path_factory.mktemp("sso-programme")
        _configure(whole, issuers, harbour_url, whole=True)
        yield Brands(providers, directory, tuple(sorted(credentials.items())), whole)
        shutil.rmtree(directory, ignore_errors=True)
        shutil.rmtree(whole, ignore_errors=True)


class _serve_all:
    """Start one provider per name on its own loopback port; stop them all on exit."""

    def __init__(
        self, names: list[str], credentials: dict[str, str], providers: dict[str, DevProvider]
    ) -> None:
        self.names = names
        self.credentials = credentials
        self.providers = providers
        self.contexts: list[Any] = []

    def __enter__(self) -> None:
        for name in self.names:
            client_id, secret = f"gateway-at-{name}", secrets.token_urlsafe(16)
            self.credentials[f"{env_name(name)}_CLIENT_ID"] = client_id
            self.credentials[f"{env_name(name)}_CLIENT_SECRET"] = secret

            def build(
                issuer: str, name: str = name, client: tuple[str, str] = (client_id, secret)
            ) -> DevProvider:
                return DevProvider(
                    issuer,
                    {client[0]: client[1]},
                    USERS[name],
                    title=name,
                    clock=lambda: CLOCK().timestamp(),
                )

            context = serve_in_thread(build)
            self.providers[name] = context.__enter__()
            self.contexts.append(context)

    def __exit__(self, *exc: object) -> None:
        for context in reversed(self.contexts):
            context.__exit__(None, None, None)


async def start_sso(
    database_url: str, brands: Brands, config_dir: Path | None = None, **settings: Any
) -> AsyncIterator[Gateway]:
    """A gateway whose partners sign in at the loopback providers (no demo data), with the
    shared clock set back to its start."""
    CLOCK.now = Clock().now
    async for gateway in start_gateway(
        database_url,
        CLOCK,
        config_dir=config_dir or brands.config_dir,
        oidc_credentials=brands.credentials,
        **settings,
    ):
        yield gateway


@pytest.fixture
async def sso(database_url: str, brands: Brands) -> AsyncIterator[Gateway]:
    async for gateway in start_sso(database_url, brands):
        yield gateway


@pytest.fixture
async def sso_programme(database_url: str, brands: Brands) -> AsyncIterator[Gateway]:
    """As ``sso``, with the whole demo coalition: its tiers and challenges too."""
    async for gateway in start_sso(database_url, brands, brands.programme_dir):
        yield gateway


@dataclass
class SignIn:
    """What a browser sign-in left: the gateway's answer and the browser's cookies."""

    response: httpx.Response
    callback: str  # the callback URL the provider sent the browser to


def form_fields(page: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page))


async def authorize(authorize_url: str, subject: str, mfa: bool = False) -> str:
    """Act as the person at the provider: pick ``subject``; return the callback URL."""
    async with httpx.AsyncClient(verify=False) as browser:  # plain http on loopback
        page = await browser.get(authorize_url)
        assert page.status_code == 200, page.text
        import html

        fields = {k: html.unescape(v) for k, v in form_fields(page.text).items()}
        fields["subject"] = subject
        if mfa:
            fields["mfa"] = "1"
        action = authorize_url.split("?")[0]
        answer = await browser.post(action, data=fields)
        assert answer.status_code in (302, 303), answer.text
        return answer.headers["location"]


async def sign_in(
    gateway: Gateway,
    provider: str,
    subject: str,
    *,
    mfa: bool = False,
    path: str = "login",
) -> SignIn:
    """The whole browser flow: gateway → provider's form → callback → session cookie."""
    start = await gateway.client.get(f"/auth/{path}/{provider}")
    assert start.status_code == 302, start.text
    callback = await authorize(start.headers["location"], subject, mfa)
    parts = urlsplit(callback)
    assert parts.netloc == "gateway", callback
    response = await gateway.client.get(f"{parts.path}?{parts.query}")
    return SignIn(response, callback)


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


async def as_browser(gateway: Gateway, query: str, variables: dict[str, Any] | None = None) -> Any:
    """A GraphQL call with the browser's session cookie and no bearer token."""
    response = await gateway.client.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"accept": "application/graphql-response+json"},
    )
    return response
