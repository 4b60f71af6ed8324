"""/account for members' browser sessions: without a session the browser gets a choice of
sign-ins (each back to /account); an operator's session, or a partner app's or anybody's
bearer token, is refused (403). The page is a server-rendered frame that ``account.js``
fills from /graphql; no inline script: the Content-Security-Policy allows this origin only."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.auth.principal import MemberPrincipal
from gateway.auth.providers import COALITION
from partners.config.coalition import Coalition

if TYPE_CHECKING:
    from gateway.api.authentication import AuthSystem

STATIC = Path(__file__).parent / "static"
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = {
    "content-security-policy": POLICY,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}
SIGN_IN = "/account/sign-in"


def document(title: str, body: str, script: bool = False) -> str:
    tag = (
        '<script src="/pages/static/api.js" defer></script>'
        '<script src="/account/static/account.js" defer></script>'
        if script
        else ""
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        f'<link rel="stylesheet" href="/account/static/account.css">{tag}</head>\n'
        f"<body>{body}</body></html>\n"
    )


def link_path(provider: str) -> str:
    """Link a brand's sign-in, then come back to the page that confirms it."""
    return f"/auth/link/{provider}?return_to={quote(f'/account?linked={provider}', safe='/')}"


class AccountPage:
    def __init__(self, auth: AuthSystem, coalition: Callable[[], Coalition]) -> None:
        """``coalition``: the configuration in force (it changes at run time)."""
        self.auth = auth
        self.coalition = coalition

    def brands(self) -> list[tuple[str, str]]:
        """(provider, label) of every sign-in: the partners' by name, the coalition's last."""
        coalition = self.coalition()
        names = {slug: partner.name for slug, partner in coalition.partners.items()}
        names[COALITION] = coalition.name
        return sorted(
            ((name, names.get(name, name)) for name in self.auth.sign_ins),
            key=lambda item: (item[0] == COALITION, item[1]),
        )

    async def page(self, request: Request) -> Response:
        authenticator = self.auth.authenticator
        assert authenticator is not None, "the app has not started"
        principal = await authenticator.session_principal(request)
        if isinstance(principal, MemberPrincipal):
            return HTMLResponse(self.frame(), headers=HEADERS)
        if principal is None and "authorization" not in request.headers:
            return RedirectResponse(SIGN_IN, 303, headers={"cache-control": "no-store"})
        body = (
            '<main id="main" class="narrow"><h1>Not a member\'s sign-in</h1>'
            "<p>This page shows a member's own points. You are signed in as a coalition "
            "operator or with a partner app's token, which has no points of its own.</p>"
            '<form method="post" action="/auth/logout"><button type="submit">Sign out'
            '</button></form><p><a href="/graphql">Back to the gateway</a></p></main>'
        )
        return HTMLResponse(document("Not a member", body), 403, headers=HEADERS)

    async def sign_in(self, request: Request) -> Response:
        e = html.escape
        back = quote("/account", safe="/")
        choices = "".join(
            f'<li><a class="button" href="/auth/login/{e(name)}?return_to={back}">'
            f"Sign in with {e(label)}</a></li>"
            for name, label in self.brands()
        )
        body = (
            '<main id="main" class="narrow"><h1>Your points</h1>'
            "<p>Sign in with any brand of the coalition you are a member of.</p>"
            f'<ul class="choices">{choices}</ul></main>'
        )
        return HTMLResponse(document("Sign in", body), headers=HEADERS)

    def frame(self) -> str:
        e = html.escape
        links = "".join(
            f'<li data-provider="{e(name)}"><a class="button" href="{e(link_path(name))}">'
            f"Link {e(label)}</a></li>"
            for name, label in self.brands()
        )
        body = (
            '<header class="top"><a class="brand" href="/account">Your points</a>'
            '<span class="who" id="who"></span>'
            '<form method="post" action="/auth/logout"><button type="submit">Sign out</button>'
            "</form></header>"
            '<main id="main">'
            '<div id="notice" class="notice" role="status" aria-live="polite" hidden></div>'
            '<section aria-labelledby="wallets-title"><h1 id="wallets-title">Your wallets</h1>'
            '<p class="total" id="total"></p><ul class="wallets" id="wallets">'
            '<li class="loading">Loading your wallets…</li></ul></section>'
            '<section aria-labelledby="convert-title"><h2 id="convert-title">Convert points</h2>'
            '<form id="convert" class="convert">'
            '<div class="field"><label for="convert-from">From</label>'
            '<select name="from" id="convert-from" required></select></div>'
            '<div class="field"><label for="convert-to">To</label>'
            '<select name="to" id="convert-to" required></select></div>'
            '<div class="field"><label for="convert-points">Points</label>'
            '<input name="points" id="convert-points" type="number" min="1" step="1" '
            'inputmode="numeric" required></div>'
            '<button type="submit">Get a quote</button></form>'
            '<div id="quote" class="quote" hidden></div>'
            '<p id="convert-result" class="result" role="status" aria-live="polite"></p>'
            "</section>"
            '<section aria-labelledby="brands-title"><h2 id="brands-title">Linked brands</h2>'
            '<ul class="identities" id="identities"></ul>'
            '<p id="unlink-result" class="result" role="status" aria-live="polite"></p>'
            '<h3>Link another brand</h3><p class="hint">Linking signs you in at the brand; '
            "if it knows you as another member, that member's points move to you. It needs "
            "a sign-in from the last 10 minutes: if asked, sign out and in again.</p>"
            f'<ul class="links" id="links">{links}</ul></section>'
            '<section aria-labelledby="rewards-title"><h2 id="rewards-title">Rewards you can '
            'get now</h2><ul class="rewards" id="rewards"></ul></section>'
            '<section aria-labelledby="history-title"><h2 id="history-title">History</h2>'
            '<ol class="history" id="history"></ol>'
            '<button type="button" id="more" hidden>Show older</button></section>'
            '<section aria-labelledby="data-title"><h2 id="data-title">Your data</h2>'
            '<p class="hint">Everything the coalition holds about you, as a JSON file.</p>'
            '<a class="button" href="/account/export" download>Download your data</a>'
            "</section>"
            "</main>"
        )
        return document("Your points", body, script=True)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/account", self.page, methods=["GET"]),
            Route(SIGN_IN, self.sign_in, methods=["GET"]),
            Mount("/account/static", app=StaticFiles(directory=STATIC), name="account-static"),
        ]
