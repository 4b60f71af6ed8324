"""GET /account/export: the signed-in member's data (gateway.privacy's export document) as
a JSON attachment, for their browser session only (401 without one, 403 for an operator's
session). Each download leaves an audit entry, as the `exportMyData` mutation does."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.api.auditing import actor_of, record
from gateway.audit.entries import detail_of
from gateway.audit.trail import AuditTrail
from gateway.auth.principal import MemberPrincipal
from gateway.kernel.errors import DomainError
from gateway.privacy.service import PrivacyService

if TYPE_CHECKING:
    from gateway.api.authentication import AuthSystem

PATH = "/account/export"
HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff"}


class AccountExport:
    def __init__(self, auth: AuthSystem, privacy: Callable[[], PrivacyService]) -> None:
        """``privacy``: the app's service (built when the app starts)."""
        self.auth = auth
        self.privacy = privacy

    async def download(self, request: Request) -> Response:
        authenticator = self.auth.authenticator
        assert authenticator is not None, "the app has not started"
        principal = await authenticator.session_principal(request)
        if not isinstance(principal, MemberPrincipal):
            status = 401 if principal is None else 403
            message = "Sign in at /account first." if principal is None else "Not a member."
            return JSONResponse({"error": message}, status, headers=HEADERS)
        privacy = self.privacy()
        member_id = principal.member_id
        try:
            document = await privacy.export(member_id)
        except DomainError as error:
            await self._audit(privacy, principal, "rejected", detail_of([error.code.value]))
            return JSONResponse({"error": error.message, "code": error.code.value}, 404)
        await self._audit(privacy, principal, "ok", None)
        day = str(document["exportedAt"])[:10]
        return Response(
            json.dumps(document, indent=2, ensure_ascii=False),
            media_type="application/json",
            headers={
                **HEADERS,
                "content-disposition": f'attachment; filename="coalition-data-{day}.json"',
            },
        )

    @staticmethod
    async def _audit(
        privacy: PrivacyService, principal: MemberPrincipal, outcome: str, detail: str | None
    ) -> None:
        ledger = privacy.ledger
        await record(
            AuditTrail(ledger.uow),
            ledger.clock(),
            actor_of(principal),
            "exportMyData",
            outcome,
            target=("member", principal.member_id),
            member_id=principal.member_id,
            detail=detail,
            data={"via": "download"},
        )

    def routes(self) -> list[BaseRoute]:
        return [Route(PATH, self.download, methods=["GET"])]
