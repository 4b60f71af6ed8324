"""``POST /imports/earns?partner=SLUG``: a partner's app hands over a file of earns as the
request body (``text/csv`` or ``application/x-ndjson``) and gets 202 with the import's id at
once; the job runner posts it (``gateway/imports/service.py``), and ``earnImport(id)`` shows
its progress and rejected lines.

Authenticated like /graphql; the caller needs ``points:earn`` at the partner. The body is
streamed into the database in chunks (memory stays bounded), checked as it arrives: a header
with wrong columns is refused before anything is stored (400), content that is not UTF-8
(400) or over the size limit (413) drops what was stored. The same content uploaded again
for the same partner answers with the import it made before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from io import BytesIO

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.api.auditing import actor_of
from gateway.api.auditing import record as record_entry
from gateway.api.graphql.context import Context
from gateway.api.graphql.imports import import_id
from gateway.api.http import BadRequest
from gateway.audit.trail import AuditTrail
from gateway.imports.files import (
    BOM,
    MAX_LINE_BYTES,
    FileRefused,
    Format,
    Utf8Check,
    read_header,
)
from gateway.imports.service import ImportService
from gateway.kernel.errors import DomainError, ErrorCode

CHUNK_BYTES = 1024 * 1024
MEDIA: dict[str, Format] = {
    "text/csv": "csv",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
}
POLL = "query($id: ID!) { earnImport(id: $id) { status progress posted rejected } }"


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return JSONResponse(body, status_code=status, headers=headers)


def _header_ready(head: bytes | bytearray) -> bool:
    """Whether ``head`` holds the file's first non-blank line whole."""
    text = head[len(BOM) :] if head.startswith(BOM) else head
    return b"\n" in text.lstrip(b" \t\r\n") or len(head) > MAX_LINE_BYTES


async def upload_earns(
    request: Request,
    context: Callable[[Request], Awaitable[Context]],
    imports: ImportService,
    max_bytes: int,
) -> Response:
    try:
        called = await context(request)
        access = called.access
    except BadRequest as error:
        return _error(error.status, error.code or "BAD_REQUEST", error.message, error.headers)
    partner = request.query_params.get("partner", "")
    try:
        imports.ledger.partner(partner)
        access.act_at(partner, "points:earn")
    except DomainError as error:
        status = 403 if error.code is ErrorCode.ACCESS_DENIED else 400
        return _error(status, error.code.value, error.message)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    format = MEDIA.get(media)
    if format is None:
        return _error(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "Send the file as text/csv or application/x-ndjson (JSON Lines).",
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return _error(413, "PAYLOAD_TOO_LARGE", f"An import file may have {max_bytes} bytes.")
    source = request.query_params.get("name", "") or f"upload.{format}"
    check, head, buffer = Utf8Check(), bytearray(), bytearray()
    started: int | None = None
    seq = 0
    try:
        async for piece in request.stream():
            if check.size + len(piece) > max_bytes:
                raise _TooLarge
            check.feed(piece)
            if started is None:
                head += piece
                if not _header_ready(head):
                    continue
                read_header(BytesIO(bytes(head)), format)
                started = await imports.upload_started(
                    partner, source, format, restricted=not access.is_operator
                )
                buffer, head = head, bytearray()
            else:
                buffer += piece
            while len(buffer) >= CHUNK_BYTES:
                await imports.add_chunk(started, seq, bytes(buffer[:CHUNK_BYTES]))
                del buffer[:CHUNK_BYTES]
                seq += 1
        scanned = check.done()
        if started is None:
            if not head.strip(BOM + b" \t\r\n"):
                raise FileRefused("The file is empty.")
            read_header(BytesIO(bytes(head)), format)
            started = await imports.upload_started(
                partner, source, format, restricted=not access.is_operator
            )
            buffer = head
        if buffer:
            await imports.add_chunk(started, seq, bytes(buffer))
        record = await imports.upload_done(started, partner, scanned)
    except FileRefused as error:
        if started is not None:
            await imports.upload_abandoned(started)
        return _error(400, "BAD_FILE", f"{error} Nothing was imported.")
    except _TooLarge:
        if started is not None:
            await imports.upload_abandoned(started)
        return _error(413, "PAYLOAD_TOO_LARGE", f"An import file may have {max_bytes} bytes.")
    except BaseException:
        if started is not None:
            await imports.upload_abandoned(started)
        raise
    number = import_id(record.id)
    # The lines' earns are posted later by the import job (``system:imports.run``).
    await record_entry(
        AuditTrail(imports.ledger.uow),
        imports.ledger.clock(),
        actor_of(called.principal),
        "imports.upload",
        target=("import", str(record.id)),
        partner=partner,
        data={"format": format},
    )
    return JSONResponse(
        {
            "id": number,
            "status": record.status,
            "poll": {"query": POLL, "variables": {"id": number}},
        },
        status_code=202,
    )


class _TooLarge(Exception):
    pass
