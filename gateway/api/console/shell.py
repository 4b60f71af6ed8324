"""The HTML around every console page: the navigation, who is signed in, the shared and the
page's scripts. No inline script: the Content-Security-Policy allows this origin only."""

from __future__ import annotations

import html

from gateway.api.console.pages import PAGES, Page
from gateway.api.page_assets import PAGES_API

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


def document(title: str, body: str, scripts: tuple[str, ...] = ()) -> str:
    e = html.escape
    sources = [f"/console/static/{s}" for s in scripts]
    if scripts:
        sources.insert(0, PAGES_API)
    tags = "".join(f'<script src="{e(source)}" defer></script>' for source in sources)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · Coalition console</title>"
        '<link rel="stylesheet" href="/console/static/console.css">'
        f"{tags}</head>\n<body>{body}</body></html>\n"
    )


def navigation(current: Page | None, operator: str) -> str:
    e = html.escape
    here = ' aria-current="page"'
    links = "".join(
        f'<li><a href="{e(page.path)}"{here if page is current else ""}>{e(page.title)}</a></li>'
        for page in PAGES
    )
    return (
        '<header class="top"><a class="brand" href="/console">Coalition console</a>'
        f'<nav aria-label="Console"><ul>{links}</ul></nav>'
        f'<span class="who">{e(operator)}</span>'
        '<form method="post" action="/auth/logout"><button type="submit">Sign out</button>'
        "</form></header>"
    )


def render(page: Page, operator: str) -> str:
    body = (
        f"{navigation(page, operator)}"
        f'<main id="main" data-page="{html.escape(page.slug)}">'
        f"<h1>{html.escape(page.title)}</h1>"
        '<p class="status" role="status" aria-live="polite"></p>'
        f"{page.frame}</main>"
    )
    return document(page.title, body, ("console.js", page.script))


def index(operator: str) -> str:
    e = html.escape
    items = "".join(f'<li><a href="{e(page.path)}">{e(page.title)}</a></li>' for page in PAGES)
    body = (
        f"{navigation(None, operator)}"
        f'<main id="main"><h1>Coalition console</h1><ul class="pages">{items}</ul></main>'
    )
    return document("Console", body)


def refused(message: str) -> str:
    body = (
        '<main id="main" class="refused"><h1>Not for this sign-in</h1>'
        f"<p>{html.escape(message)}</p>"
        '<p><a href="/auth/login/coalition?return_to=/console">Sign in as an operator</a></p>'
        "</main>"
    )
    return document("Not for this sign-in", body)
