"""The only code that touches the imports' tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.imports.files import Rejected
from gateway.imports.tables import import_chunks, import_rejections, imports
from gateway.kernel.schema import insert_for

UPLOADING, QUEUED, RUNNING, DONE, FAILED = "uploading", "queued", "running", "done", "failed"


@dataclass(frozen=True)
class ImportRecord:
    id: int
    partner: str
    source: str
    format: str
    digest: str
    size: int
    status: str
    uploaded: bool
    restricted: bool
    lines_read: int
    posted: int
    replayed: int
    rejected: int
    position: int
    byte_offset: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None

    @property
    def progress(self) -> float:
        """How much of the file is behind the checkpoint, 0..1 (by bytes)."""
        if self.status == DONE:
            return 1.0
        return min(self.byte_offset / self.size, 1.0) if self.size else 0.0


@dataclass(frozen=True)
class Counts:
    """What one batch added to an import's counters."""

    read: int = 0
    posted: int = 0
    replayed: int = 0


def _record(row: Any) -> ImportRecord:
    return ImportRecord(**{name: row._mapping[name] for name in ImportRecord.__dataclass_fields__})


async def get(connection: AsyncConnection, import_id: int) -> ImportRecord | None:
    row = (await connection.execute(sa.select(imports).where(imports.c.id == import_id))).first()
    return None if row is None else _record(row)


async def find(connection: AsyncConnection, partner: str, digest: str) -> ImportRecord | None:
    """The import of this content at ``partner`` (an upload still arriving aside); the
    newest when several."""
    row = (
        await connection.execute(
            sa.select(imports)
            .where(
                imports.c.partner == partner,
                imports.c.digest == digest,
                imports.c.status != UPLOADING,
            )
            .order_by(imports.c.id.desc())
            .limit(1)
        )
    ).first()
    return None if row is None else _record(row)


async def create(connection: AsyncConnection, now: datetime, **values: Any) -> int:
    statement = imports.insert().values(created_at=now, updated_at=now, **values)
    result = await connection.execute(statement.returning(imports.c.id))
    return int(result.scalar_one())


async def update(connection: AsyncConnection, import_id: int, now: datetime, **values: Any) -> None:
    await connection.execute(
        imports.update().where(imports.c.id == import_id).values(updated_at=now, **values)
    )


async def checkpoint(
    connection: AsyncConnection,
    import_id: int,
    now: datetime,
    since: int,
    position: int,
    byte_offset: int,
    counts: Counts,
    rejections: Sequence[Rejected],
) -> bool:
    """Record a committed batch: the lines from after line ``since`` through ``position``.
    False (nothing recorded) when the checkpoint is no longer at ``since``: another run
    moved it."""
    moved = await connection.execute(
        imports.update()
        .where(imports.c.id == import_id, imports.c.position == since)
        .values(
            position=position,
            byte_offset=byte_offset,
            lines_read=imports.c.lines_read + counts.read,
            posted=imports.c.posted + counts.posted,
            replayed=imports.c.replayed + counts.replayed,
            rejected=imports.c.rejected + len(rejections),
            updated_at=now,
        )
    )
    if moved.rowcount != 1:
        return False
    if rejections:
        rows = [
            {
                "import_id": import_id,
                "line_number": r.number,
                "idempotency_key": None if r.key is None else r.key[:255],
                "code": r.code[:40],
                "message": r.message[:2000],
            }
            for r in rejections
        ]
        insert = insert_for(connection, import_rejections)
        await connection.execute(insert.on_conflict_do_nothing(), rows)
    return True


async def rejections(
    connection: AsyncConnection, import_id: int, after: int, limit: int
) -> list[Rejected]:
    """The rejected lines after line ``after``, in line order."""
    t = import_rejections
    found = await connection.execute(
        sa.select(t.c.line_number, t.c.idempotency_key, t.c.code, t.c.message)
        .where(t.c.import_id == import_id, t.c.line_number > after)
        .order_by(t.c.line_number)
        .limit(limit)
    )
    return [Rejected(r.line_number, r.idempotency_key, r.code, r.message) for r in found]


async def waiting(connection: AsyncConnection) -> list[int]:
    """Uploaded imports to run: queued, or running (their runner may have died)."""
    found = await connection.execute(
        sa.select(imports.c.id)
        .where(imports.c.uploaded.is_(True), imports.c.status.in_((QUEUED, RUNNING)))
        .order_by(imports.c.id)
    )
    return [int(row.id) for row in found]


async def add_chunk(connection: AsyncConnection, import_id: int, seq: int, body: bytes) -> None:
    await connection.execute(import_chunks.insert().values(import_id=import_id, seq=seq, body=body))


async def chunk(connection: AsyncConnection, import_id: int, seq: int) -> bytes | None:
    found = await connection.scalar(
        sa.select(import_chunks.c.body).where(
            import_chunks.c.import_id == import_id, import_chunks.c.seq == seq
        )
    )
    return None if found is None else bytes(found)


async def drop_chunks(connection: AsyncConnection, import_id: int) -> None:
    await connection.execute(import_chunks.delete().where(import_chunks.c.import_id == import_id))


async def delete(connection: AsyncConnection, import_id: int) -> None:
    """An upload given up: its chunks and itself (it has no rejections yet)."""
    await drop_chunks(connection, import_id)
    await connection.execute(imports.delete().where(imports.c.id == import_id))
