"""/console and its pages, for operators' browser sessions only: without a session the
browser is sent to the coalition's sign-in (and back); a member's session, or a partner
app's or anybody's bearer token, is refused (403)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.api.console import shell
from gateway.api.console.pages import find
from gateway.auth.principal import OperatorPrincipal

# isort: off
# The pages register themselves; the navigation follows the order of these imports.
from gateway.api.console import overview  # noqa: F401
from gateway.api.console import settlement  # noqa: F401
from gateway.api.console import partners  # noqa: F401
from gateway.api.console import members  # noqa: F401
from gateway.api.console import health  # noqa: F401
from gateway.api.console import audit  # noqa: F401
# isort: on

if TYPE_CHECKING:
    from gateway.api.authentication import AuthSystem

STATIC = Path(__file__).parent / "static"


class Console:
    def __init__(self, auth: AuthSystem) -> None:
        self.auth = auth

    async def _operator(self, request: Request) -> str | Response:
        """The signed-in operator's name, or the response for anyone else."""
        authenticator = self.auth.authenticator
        assert authenticator is not None, "the app has not started"
        principal = await authenticator.session_principal(request)
        if isinstance(principal, OperatorPrincipal):
            return principal.actor
        if principal is None and "authorization" not in request.headers:
            back = request.url.path
            return RedirectResponse(f"/auth/login/coalition?return_to={back}", 303)
        message = (
            "The console is for coalition operators, signed in through the coalition's "
            "provider with the operator role."
        )
        return HTMLResponse(shell.refused(message), 403, headers=shell.HEADERS)

    async def index(self, request: Request) -> Response:
        operator = await self._operator(request)
        if isinstance(operator, Response):
            return operator
        return HTMLResponse(shell.index(operator), headers=shell.HEADERS)

    async def page(self, request: Request) -> Response:
        operator = await self._operator(request)
        if isinstance(operator, Response):
            return operator
        page = find(request.path_params["page"])
        if page is None:
            return HTMLResponse(shell.refused("No such console page."), 404, headers=shell.HEADERS)
        return HTMLResponse(shell.render(page, operator), headers=shell.HEADERS)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/console", self.index, methods=["GET"]),
            Mount("/console/static", app=StaticFiles(directory=STATIC), name="console-static"),
            Route("/console/{page}", self.page, methods=["GET"]),
        ]
