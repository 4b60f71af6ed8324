"""GraphiQL from the gateway's own files (no CDN: it works offline), opened with a first query
for the caller and, for a visitor without a session, how to sign in.

The files are the unchanged npm builds under ``static/graphiql/<package>-<version>/`` (see its
README.md), served at ``/graphiql/static/`` with a year's ``immutable`` caching: the version
in the path changes with the files.
"""

from __future__ import annotations

import html
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from gateway.api.settings import Settings
from gateway.auth.clients import demo_clients
from gateway.auth.principal import MemberPrincipal, OperatorPrincipal
from gateway.auth.providers import COALITION
from partners.config.coalition import Coalition

if TYPE_CHECKING:
    from gateway.api.authentication import AuthSystem

STATIC = Path(__file__).parent / "static" / "graphiql"
PREFIX = "/graphiql/static"
SCRIPTS = (
    "react-18.3.1/react.production.min.js",
    "react-dom-18.3.1/react-dom.production.min.js",
    "graphiql-3.8.3/graphiql.min.js",
)
STYLES = ("graphiql-3.8.3/graphiql.min.css",)
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    "": "text/plain; charset=utf-8",  # LICENSE
}

Caller = Literal["member", "operator"] | None

OPERATOR_QUERY = """\
# Signed in as an operator: run with ▶ or Ctrl-Enter.
# The docs (left) describe every field.
query Partners {
  partners {
    slug
    name
    currency { code name }
    pointValue { amount currency }
  }
}
"""
MEMBER_QUERY = """\
# Signed in as a member: your points.
# Run with ▶ or Ctrl-Enter.
query Me {
  me {
    id
    enrolments { partner { slug name } partnerCustomerId }
    wallets { partner { slug } balance }
  }
}
"""
ANONYMOUS_QUERY = """\
# Sign in first (see above), or put
# a partner app's token in Headers:
# {"Authorization": "Bearer <token>"}
query Partners {
  partners { slug name currency { code name } }
}
"""


class ImmutableFiles(StaticFiles):
    """Static files with explicit content types and a year's caching."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        suffix = Path(full_path).suffix
        response.headers["content-type"] = CONTENT_TYPES.get(suffix, "application/octet-stream")
        response.headers["cache-control"] = "public, max-age=31536000, immutable"
        response.headers["x-content-type-options"] = "nosniff"
        return response


def routes() -> list[BaseRoute]:
    return [Mount(PREFIX, app=ImmutableFiles(directory=STATIC), name="graphiql-static")]


def _script_json(value: object) -> str:
    """JSON safe inside a <script> element."""
    text = json.dumps(value)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class GraphiQLPage:
    """The page at GET /graphql for browsers."""

    def __init__(
        self, auth: AuthSystem, coalition: Callable[[], Coalition], settings: Settings
    ) -> None:
        """``coalition``: the configuration in force (it changes at run time)."""
        self.auth = auth
        self.coalition = coalition
        self.settings = settings
        self.public_url = settings.public_url

    @property
    def sign_ins(self) -> list[tuple[str, str]]:
        """(provider name, label) for each sign-in offered at /auth/login: the coalition's
        own first, then the partners' by name."""
        coalition = self.coalition()
        names = {slug: partner.name for slug, partner in coalition.partners.items()}
        names[COALITION] = f"{coalition.name} (operators and members)"
        return sorted(
            ((name, names.get(name, name)) for name in self.auth.sign_ins),
            key=lambda item: (item[0] != COALITION, item[1]),
        )

    @property
    def demo_client(self) -> tuple[str, str] | None:
        """A demo partner app's id and (published) secret, to show."""
        partners = self.coalition().partners
        if not self.settings.demo_data or self.settings.production or not partners:
            return None
        client_id, (_, secret) = next(iter(demo_clients([min(partners)]).items()))
        return client_id, secret

    async def caller(self, request: Request) -> Caller:
        authenticator = self.auth.authenticator
        assert authenticator is not None, "the app has not started"
        principal = await authenticator.session_principal(request)
        if isinstance(principal, OperatorPrincipal):
            return "operator"
        if isinstance(principal, MemberPrincipal):
            return "member"
        return None

    async def __call__(self, request: Request) -> Response:
        caller = await self.caller(request)
        nonce = secrets.token_urlsafe(16)
        policy = (
            "default-src 'self'; "
            f"script-src 'self' 'nonce-{nonce}'; "
            "style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        )
        return HTMLResponse(
            self.render(caller, nonce),
            headers={
                "content-security-policy": policy,
                "cache-control": "no-store",
                "x-content-type-options": "nosniff",
                "referrer-policy": "same-origin",
            },
        )

    def render(self, caller: Caller, nonce: str) -> str:
        e = html.escape
        config = {
            "url": "/graphql",
            "query": {"operator": OPERATOR_QUERY, "member": MEMBER_QUERY}.get(
                caller or "", ANONYMOUS_QUERY
            ),
            "docs": caller is not None,  # without credentials the schema cannot be read
            "headers": caller is None,
            "storage": f"coalition-{caller or 'anonymous'}",  # a first query for each
        }
        styles = "".join(f'<link rel="stylesheet" href="{PREFIX}/{e(s)}">\n' for s in STYLES)
        scripts = "".join(f'<script src="{PREFIX}/{e(s)}"></script>\n' for s in SCRIPTS)
        return (
            '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            "<title>GraphiQL: coalition gateway</title>\n"
            f"{styles}<style>{_STYLE}</style>\n</head>\n<body>\n"
            f"{self._bar(caller)}"
            '<div id="graphiql"><p class="loading">Loading GraphiQL…</p></div>\n'
            "<noscript><p>GraphiQL needs JavaScript.</p></noscript>\n"
            f"{scripts}"
            f'<script nonce="{nonce}">\nconst config = {_script_json(config)};\n{_START}</script>\n'
            "</body>\n</html>\n"
        )

    def _bar(self, caller: Caller) -> str:
        if caller is not None:
            return (
                f'<header class="bar" id="signed-in">Signed in as {caller} in this browser. '
                '<a href="/auth/me">Who?</a> · <a href="/auth/logout">Sign out</a></header>\n'
            )
        e = html.escape
        links = "".join(
            f'<li><a href="/auth/login/{e(name)}">{e(label)}</a></li>'
            for name, label in self.sign_ins
        )
        sign_in = (
            f"<p>Sign in as a member or an operator with your account at:</p><ul>{links}</ul>"
            if links
            else ""
        )
        client = ":".join(self.demo_client) if self.demo_client else "CLIENT_ID:CLIENT_SECRET"
        token_url = f"{self.public_url}/oauth/token"
        return (
            '<header class="bar sign-in" id="sign-in">\n'
            "<h1>Sign in to use the API</h1>\n"
            "<p>Every GraphQL call is authenticated; without credentials it answers "
            "<code>UNAUTHENTICATED</code>.</p>\n"
            f"{sign_in}\n"
            "<p>Or call as a partner's app: get a token with OAuth 2.0 client credentials,</p>\n"
            f"<pre>curl -u {e(client)} -d grant_type=client_credentials {e(token_url)}</pre>\n"
            "<p>then open the <strong>Headers</strong> tab under the editor and put "
            '<code>{"Authorization": "Bearer &lt;access_token&gt;"}</code>; re-fetch the '
            "schema (the ↻ button) for the documentation.</p>\n"
            "</header>\n"
        )


_STYLE = """
html, body { height: 100%; margin: 0; }
body { display: flex; flex-direction: column; }
#graphiql { flex: 1; min-height: 0; }
.bar { padding: 6px 16px; font: 14px/1.4 system-ui, sans-serif; border-bottom: 1px solid #ccc; }
.bar h1 { font-size: 16px; margin: 4px 0; }
.bar p, .bar ul, .bar pre { margin: 4px 0; }
.bar ul { display: flex; flex-wrap: wrap; gap: 4px 20px; padding: 0; list-style: none; }
.bar pre { overflow-x: auto; }
.loading { padding: 16px; font-family: system-ui, sans-serif; }
"""

_START = """\
const fetcher = GraphiQL.createFetcher({
  url: config.url,
  fetch: (url, init) => fetch(url, {...init, credentials: "same-origin"}),
});
ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQL, {
    fetcher,
    defaultQuery: config.query,
    defaultEditorToolsVisibility: config.headers ? "headers" : undefined,
    storage: GraphiQL.createLocalStorage({namespace: config.storage}),
    visiblePlugin: config.docs ? GraphiQL.React.DOC_EXPLORER_PLUGIN : undefined,
    shouldPersistHeaders: false,
  }),
);
"""
