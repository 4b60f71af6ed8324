"""CORS for partner web apps (COALITION_CORS_ORIGINS): listed origins get the CORS headers,
credentials included; any other origin gets none, and its preflight is refused (400)."""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse, Response
from starlette.types import Message, Send

ALLOWED_HEADERS = ["Authorization", "Content-Type", "Accept", "X-Request-ID"]
EXPOSED_HEADERS = ["X-Request-ID", "Retry-After", "WWW-Authenticate"]


class ListedOrigins(CORSMiddleware):
    """Starlette's, except that a response to an unlisted origin carries no CORS header
    at all (Starlette adds Allow-Credentials and Expose-Headers for any origin, and the
    allowed methods and headers to a refused preflight)."""

    def preflight_response(self, request_headers: Headers) -> Response:
        if not self.is_allowed_origin(request_headers["Origin"]):
            return PlainTextResponse("Disallowed CORS origin", 400, headers={"Vary": "Origin"})
        return super().preflight_response(request_headers)

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        origin = request_headers.get("Origin")
        if (
            message["type"] != "http.response.start"
            or origin is None
            or self.is_allowed_origin(origin)
        ):
            await super().send(message, send, request_headers)
        else:
            headers = MutableHeaders(scope=message)
            headers["Vary"] = ", ".join([*headers.getlist("Vary"), "Origin"])
            await send(message)


def cors(origins: tuple[str, ...]) -> Middleware:
    return Middleware(
        ListedOrigins,
        allow_origins=list(origins),
        allow_methods=["GET", "POST"],
        allow_headers=ALLOWED_HEADERS,
        allow_credentials=True,
        expose_headers=EXPOSED_HEADERS,
        max_age=600,
    )
