"""The development provider's HTML pages: the sign-in form and plain message pages."""

from __future__ import annotations

import html
from collections.abc import Sequence

from starlette.responses import HTMLResponse, Response

_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
_STYLE = (
    "body{font:16px/1.45 system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem;"
    "color:#1d1d1f}ul{list-style:none;padding:0}li{margin:.4rem 0}"
    "li button{width:100%;text-align:left;padding:.6rem}code{font-size:.9em}"
    ".notice{color:#a00}.default{position:absolute;left:-10000px}"
)


def sign_in_page(
    title: str,
    action: str,
    client_id: str,
    hidden: Sequence[tuple[str, str]],
    users: Sequence[tuple[str, str]],
    notice: str = "",
    status: int = 200,
) -> Response:
    """The sign-in form posting to ``action``: ``hidden`` fields echo the authorization
    request; ``users`` are (subject, name) pairs to pick from; any other subject may be
    typed; the user may claim a second factor, or deny."""
    e = html.escape
    fields = "".join(
        f'<input type="hidden" name="{e(name)}" value="{e(value)}">\n' for name, value in hidden
    )
    choices = "".join(
        f'<li><button type="submit" name="subject" value="{e(subject)}">'
        f"<strong>{e(name)}</strong> <code>{e(subject)}</code></button></li>\n"
        for subject, name in users
    )
    body = (
        f"<p>Signing in to <code>{e(client_id)}</code>.</p>\n"
        + (f'<p class="notice">{e(notice)}</p>\n' if notice else "")
        + f'<form method="post" action="{e(action)}">\n{fields}'
        # Pressing Enter in the text field submits the first button: make it this one.
        '<button type="submit" name="subject" value="" class="default" tabindex="-1"'
        ' aria-hidden="true">Sign in</button>\n'
        '<p><label><input type="checkbox" name="mfa" value="1">'
        " I used a second factor (MFA)</label></p>\n"
        f"<ul>\n{choices}</ul>\n"
        '<p><label for="other_subject">Any other subject:</label>\n'
        '<input id="other_subject" name="other_subject" autocomplete="off">\n'
        '<button type="submit" name="subject" value="">Sign in</button></p>\n'
        '<p><button type="submit" name="deny" value="1">Deny</button></p>\n</form>'
    )
    return _html(status, title, body)


def message_page(title: str, status: int, heading: str, message: str) -> Response:
    """A page saying ``message`` under ``heading``."""
    body = f"<h2>{html.escape(heading)}</h2>\n<p>{html.escape(message)}</p>"
    return _html(status, title, body)


def _html(status: int, title: str, body: str) -> Response:
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style></head>\n"
        f"<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )
    return HTMLResponse(page, status, headers=_PAGE_HEADERS)
