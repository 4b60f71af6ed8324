"""Import jobs over GraphQL: an import's progress and its rejected lines (the file itself is
uploaded with ``POST /imports/earns``, see ``gateway/api/imports_routes.py``).

Operators see every import; a partner's app only its own (null otherwise); members none.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry import relay

from gateway.api.graphql import cursors
from gateway.api.graphql.context import Info
from gateway.api.graphql.earning import programme
from gateway.api.graphql.errors import ArgumentError
from gateway.api.graphql.partner_types import Partner
from gateway.api.graphql.scalars import Int64, decode_int_id, encode_id
from gateway.auth.policy import denied
from gateway.imports.service import ImportService
from gateway.imports.store import UPLOADING, ImportRecord

MAX_PAGE = 1000


def import_id(number: int) -> str:
    return encode_id("EarnImport", number)


def imports_of(info: Info) -> ImportService:
    return ImportService(programme(info))


@strawberry.enum(description="Where an import stands.")
class EarnImportStatus(Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@strawberry.type(description="A line of an import that was not posted, and why.")
class ImportRejection:
    line_number: Int64 = strawberry.field(description="The line in the file (1: its first).")
    idempotency_key: str | None
    code: str = strawberry.field(description="An error code, as in `userErrors`.")
    message: str


@strawberry.type
class ImportRejectionEdge:
    cursor: str
    node: ImportRejection


@strawberry.type(description="A page of an import's rejected lines, in line order.")
class ImportRejectionConnection:
    edges: list[ImportRejectionEdge]
    page_info: relay.PageInfo


@strawberry.type(description="A file of earns a partner's app uploaded, posted in batches.")
class EarnImport:
    record: strawberry.Private[ImportRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(import_id(self.record.id))

    @strawberry.field
    def partner(self, info: Info) -> Partner:
        return Partner.of(info, self.record.partner)

    @strawberry.field(description="The name the file was uploaded as.")
    def source(self) -> str:
        return self.record.source

    @strawberry.field
    def status(self) -> EarnImportStatus:
        return EarnImportStatus(self.record.status)

    @strawberry.field(description="Lines read so far (blank lines aside).")
    def lines_read(self) -> Int64:
        return self.record.lines_read

    @strawberry.field(description="Lines posted.")
    def posted(self) -> Int64:
        return self.record.posted

    @strawberry.field(description="Lines whose idempotency key had posted already.")
    def replayed(self) -> Int64:
        return self.record.replayed

    @strawberry.field(description="Lines not posted: see `rejections`.")
    def rejected(self) -> Int64:
        return self.record.rejected

    @strawberry.field(description="How much of the file is done, 0 to 1 (by its bytes).")
    def progress(self) -> float:
        return self.record.progress

    @strawberry.field
    def created_at(self) -> datetime:
        return self.record.created_at

    @strawberry.field
    def started_at(self) -> datetime | None:
        return self.record.started_at

    @strawberry.field
    def finished_at(self) -> datetime | None:
        return self.record.finished_at

    @strawberry.field(description="Why the import failed, when it did.")
    def error(self) -> str | None:
        return self.record.error

    @strawberry.field(description=f"The rejected lines, in line order (at most {MAX_PAGE}).")
    async def rejections(
        self, info: Info, first: int = 100, after: str | None = None
    ) -> ImportRejectionConnection:
        if not 0 <= first <= MAX_PAGE:
            raise ArgumentError(f"`first` must be between 0 and {MAX_PAGE}.")
        since = cursors.position("line", after) or 0
        found = await imports_of(info).rejections(self.record.id, since, first + 1)
        page = found[:first]
        edges = [
            ImportRejectionEdge(
                cursor=cursors.cursor("line", r.number),
                node=ImportRejection(
                    line_number=r.number, idempotency_key=r.key, code=r.code, message=r.message
                ),
            )
            for r in page
        ]
        return ImportRejectionConnection(
            edges=edges,
            page_info=relay.PageInfo(
                has_next_page=len(found) > first,
                has_previous_page=since > 0,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )


@strawberry.type
class ImportQueries:
    @strawberry.field(
        description="An import job (`POST /imports/earns` answers with its id): operators see "
        "any, a partner's app its own; null otherwise or when there is none."
    )
    async def earn_import(self, info: Info, id: strawberry.ID) -> EarnImport | None:
        access = info.context.access
        if not access.is_operator and access.partner is None:
            raise denied("Only a partner's app or an operator may read imports.")
        number = decode_int_id(str(id), "EarnImport")
        if number is None:
            return None
        record = await imports_of(info).get(number)
        if record is None or record.status == UPLOADING:
            return None
        if not access.is_operator and access.partner != record.partner:
            return None
        return EarnImport(record=record)
