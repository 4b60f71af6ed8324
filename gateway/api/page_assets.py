"""The script the gateway's own pages share (static/pages/api.js: the GraphQL call with the
session cookie, a DOM builder), at /pages/static/."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static" / "pages"
PAGES_API = "/pages/static/api.js"


def routes() -> list[BaseRoute]:
    return [Mount("/pages/static", app=StaticFiles(directory=STATIC), name="pages-static")]
