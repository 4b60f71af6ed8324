"""The console's pages: each is a title, a server-rendered frame, and a script of its own
(in ``static/``) that fills the frame from the GraphQL API."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    slug: str  # /console/<slug>
    title: str
    script: str  # static/<script>, loaded after console.js
    frame: str  # the page's HTML inside <main>, filled by the script

    @property
    def path(self) -> str:
        return f"/console/{self.slug}"


# In the navigation's order; a page's module adds itself here (see overview.py, ...).
PAGES: list[Page] = []


def register(page: Page) -> Page:
    if any(existing.slug == page.slug for existing in PAGES):
        raise ValueError(f"two console pages at /console/{page.slug}")
    PAGES.append(page)
    return page


def find(slug: str) -> Page | None:
    return next((page for page in PAGES if page.slug == slug), None)
