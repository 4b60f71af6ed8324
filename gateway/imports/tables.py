"""The tables of imports: each import with its counters and checkpoint, its rejected lines,
and the content of files uploaded for an import job. Migration 0016 creates them."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from gateway.kernel.schema import BigId, Moment

LIVE = "status NOT IN ('failed', 'uploading')"


class Import(SQLModel, table=True):
    """One file of earns posted for a partner. ``position``/``offset``: the last line whose
    batch committed and the byte offset after it, where a run carries on."""

    __tablename__ = "imports"
    __table_args__ = (
        # One live import per partner and content (a failed one may be made again).
        sa.Index(
            "ux_imports_file",
            "partner",
            "digest",
            unique=True,
            postgresql_where=sa.text(LIVE),
            sqlite_where=sa.text(LIVE),
        ),
        sa.Index("ix_imports_status", "status"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    partner: str = Field(max_length=32)
    source: str = Field(max_length=500)  # the file's name
    format: str = Field(max_length=8)  # csv | jsonl
    digest: str = Field(max_length=64)  # sha256 of the content, hex
    size: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False, default=0))
    # uploading (a job's body arriving) | queued | running | done | failed
    status: str = Field(max_length=16)
    uploaded: bool = False  # the content is in import_chunks (an import job)
    # Submitted by a partner's app: member ids must be of members it reaches.
    restricted: bool = False
    lines_read: int = Field(
        default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, default=0)
    )
    posted: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, default=0))
    replayed: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, default=0))
    rejected: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, default=0))
    position: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, default=0))
    byte_offset: int = Field(
        default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, default=0)
    )
    created_at: datetime = Field(sa_type=Moment)
    updated_at: datetime = Field(sa_type=Moment)
    started_at: datetime | None = Field(default=None, sa_type=Moment)
    finished_at: datetime | None = Field(default=None, sa_type=Moment)
    error: str | None = Field(default=None, max_length=2000)


class ImportRejection(SQLModel, table=True):
    __tablename__ = "import_rejections"

    import_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("imports.id"), primary_key=True)
    )
    line_number: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True))
    idempotency_key: str | None = Field(default=None, max_length=255)
    code: str = Field(max_length=40)
    message: str = Field(max_length=2000)


class ImportChunk(SQLModel, table=True):
    """A piece of an uploaded file, in order."""

    __tablename__ = "import_chunks"

    import_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("imports.id"), primary_key=True)
    )
    seq: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True))
    body: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))


imports = Import.__table__  # type: ignore[attr-defined]
import_rejections = ImportRejection.__table__  # type: ignore[attr-defined]
import_chunks = ImportChunk.__table__  # type: ignore[attr-defined]
