"""Running an import: the file in batches through ``EarningService.earn_bulk``, each batch's
outcome (counters, rejected lines) and the checkpoint recorded once the batch committed.

Resuming: an import is found again by its partner and content digest, and carries on from
its checkpoint's byte offset. A batch that committed while its checkpoint did not (a crash
between the two) runs again: its keys are claimed already, so its lines come back as replays
and nothing posts twice. One run at a time per import: on PostgreSQL a run holds the
import's advisory lock (released when its connection ends, a killed run's too); everywhere
the checkpoint moves only from where the run found it.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.earning.bulk import MAX_BULK
from gateway.earning.service import EarningService
from gateway.events.followers import try_lock
from gateway.imports import store
from gateway.imports.files import (
    FileRefused,
    Format,
    Parsed,
    Rejected,
    Scanned,
    read_header,
    records,
)
from gateway.imports.store import DONE, FAILED, QUEUED, RUNNING, UPLOADING, Counts, ImportRecord
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.members.store import partners_of

IMPORT_LOCKS = 727277  # the advisory-lock class of imports (the objid: the import's id)
DEFAULT_BATCH = 5_000


class ImportBusy(Exception):
    """Another process is running this import now."""


class ImportGone(Exception):
    """The import's checkpoint moved under this run (another run); this one stopped."""


@dataclass(frozen=True)
class Opened:
    record: ImportRecord
    created: bool


Progress = Callable[[ImportRecord], None]


class ImportService:
    def __init__(self, earning: EarningService) -> None:
        self.earning = earning
        self.ledger = earning.ledger
        self.uow = earning.ledger.uow

    async def get(self, import_id: int) -> ImportRecord | None:
        return await self.uow.read(lambda c: store.get(c, import_id))

    async def rejections(self, import_id: int, after: int, limit: int) -> list[Rejected]:
        return await self.uow.read(lambda c: store.rejections(c, import_id, after, limit))

    async def open(self, partner: str, source: str, format: Format, scanned: Scanned) -> Opened:
        """The import of this file (its partner and content) to run or resume: found, or
        created. Unknown partners are refused."""
        self.ledger.partner(partner)

        async def work(connection: AsyncConnection) -> Opened:
            found = await store.find(connection, partner, scanned.digest)
            if found is not None and found.status != FAILED:
                return Opened(found, False)
            import_id = await store.create(
                connection,
                self.ledger.clock(),
                partner=partner,
                source=source[-500:],
                format=format,
                digest=scanned.digest,
                size=scanned.size,
                status=QUEUED,
            )
            created = await store.get(connection, import_id)
            assert created is not None
            return Opened(created, True)

        try:
            return await self.uow.write(work)
        except IntegrityError:  # another run opened it meanwhile: that import
            return await self.uow.write(work)

    @contextlib.asynccontextmanager
    async def held(self, import_id: int) -> AsyncIterator[bool]:
        """The import's lock for a run (PostgreSQL; always held on SQLite): False when
        another run holds it. Its transaction writes nothing, so it holds back no event."""
        async with self.ledger.engine.connect() as connection:
            try:
                yield await try_lock(connection, IMPORT_LOCKS, str(import_id))
            finally:
                await connection.rollback()

    async def run(
        self,
        import_id: int,
        stream: BinaryIO,
        batch_size: int = DEFAULT_BATCH,
        progress: Progress | None = None,
        stop: Callable[[], bool] = lambda: False,
    ) -> ImportRecord:
        """Post the import's file from its checkpoint on (the caller holds its lock); the
        import as it stands after (done, or running when ``stop`` said so after a batch)."""
        batch_size = max(1, min(batch_size, MAX_BULK))
        found = await self.get(import_id)
        assert found is not None
        record = found
        if record.status == DONE:
            return record
        self.ledger.partner(record.partner)
        header = read_header(stream, "jsonl" if record.format == "jsonl" else "csv")
        now = self.ledger.clock()
        await self.uow.write(
            lambda c: store.update(
                c, import_id, now, status=RUNNING, started_at=found.started_at or now, error=None
            )
        )
        start = record.byte_offset or header.start
        number = record.position + 1 if record.position else header.first_line
        position = record.position
        batch: list[Parsed | Rejected] = []
        end, last = start, position
        for read in records(stream, header, record.partner, self.ledger.clock, start, number):
            batch.append(read.item)
            end, last = read.end, read.last
            if len(batch) >= batch_size:
                record = await self._batch(record, batch, position, last, end)
                position, batch = last, []
                if progress is not None:
                    progress(record)
                if stop():
                    return record
        if batch or last != position:
            record = await self._batch(record, batch, position, last, end)
        finished = self.ledger.clock()
        await self.uow.write(
            lambda c: store.update(c, import_id, finished, status=DONE, finished_at=finished)
        )
        done = await self.get(import_id)
        assert done is not None
        if progress is not None:
            progress(done)
        return done

    async def _batch(
        self,
        record: ImportRecord,
        batch: list[Parsed | Rejected],
        since: int,
        position: int,
        byte_offset: int,
    ) -> ImportRecord:
        rejected = [item for item in batch if isinstance(item, Rejected)]
        parsed = [item for item in batch if isinstance(item, Parsed)]
        if record.restricted:
            parsed, refused = await self._reachable(record.partner, parsed)
            rejected += refused
        counts = Counts(read=len(batch))
        if parsed:
            answers = await self.earning.earn_bulk(record.partner, [p.line for p in parsed])
            posted = replayed = 0
            for item, answer in zip(parsed, answers, strict=True):
                if isinstance(answer, DomainError):
                    key = item.line.idempotency_key
                    rejected.append(Rejected(item.number, key, answer.code.value, answer.message))
                elif answer.posting.replayed:
                    replayed += 1
                else:
                    posted += 1
            counts = Counts(len(batch), posted, replayed)
        rejected.sort(key=lambda r: r.number)
        now = self.ledger.clock()

        async def work(connection: AsyncConnection) -> ImportRecord:
            moved = await store.checkpoint(
                connection, record.id, now, since, position, byte_offset, counts, rejected
            )
            if not moved:
                raise ImportGone(f"Import {record.id} was moved on by another run.")
            found = await store.get(connection, record.id)
            assert found is not None
            return found

        return await self.uow.write(work)

    async def _reachable(
        self, partner: str, parsed: list[Parsed]
    ) -> tuple[list[Parsed], list[Rejected]]:
        """For a partner's app: lines naming a member by id only for members it reaches
        (enrolled or signed in there); the others as if there were no such member."""
        ids = sorted({p.line.member.id for p in parsed if p.line.member.id is not None})
        if not ids:
            return parsed, []
        where = await self.uow.read(lambda c: partners_of(c, ids))
        kept, refused = [], []
        for item in parsed:
            member = item.line.member.id
            if member is None or partner in where.get(member, ()):
                kept.append(item)
            else:
                key = item.line.idempotency_key
                code = ErrorCode.UNKNOWN_MEMBER.value
                refused.append(Rejected(item.number, key, code, "No such member."))
        return kept, refused

    # Import jobs: files uploaded by partners' apps, run by the job runner

    async def upload_started(
        self, partner: str, source: str, format: Format, restricted: bool
    ) -> int:
        now = self.ledger.clock()
        return await self.uow.write(
            lambda c: store.create(
                c,
                now,
                partner=partner,
                source=source[-500:],
                format=format,
                digest="",
                size=0,
                status=UPLOADING,
                uploaded=True,
                restricted=restricted,
            )
        )

    async def add_chunk(self, import_id: int, seq: int, body: bytes) -> None:
        await self.uow.write(lambda c: store.add_chunk(c, import_id, seq, body))

    async def upload_done(self, import_id: int, partner: str, scanned: Scanned) -> ImportRecord:
        """Queue the upload; when the same content was imported at ``partner`` already
        (and not failed), that import instead, and the upload is dropped."""
        now = self.ledger.clock()

        async def work(connection: AsyncConnection) -> ImportRecord:
            found = await store.find(connection, partner, scanned.digest)
            if found is not None and found.status != FAILED:
                await store.delete(connection, import_id)
                return found
            await store.update(
                connection,
                import_id,
                now,
                digest=scanned.digest,
                size=scanned.size,
                status=QUEUED,
            )
            record = await store.get(connection, import_id)
            assert record is not None
            return record

        try:
            return await self.uow.write(work)
        except IntegrityError:  # the same content was queued meanwhile: that import
            return await self.uow.write(work)

    async def upload_abandoned(self, import_id: int) -> None:
        await self.uow.write(lambda c: store.delete(c, import_id))

    async def run_waiting(self, batch_size: int = DEFAULT_BATCH) -> int:
        """Run every uploaded import that is queued, or running with no live run (its
        runner died); how many were finished. Imports another runner holds are left."""
        finished = 0
        for import_id in await self.uow.read(store.waiting):
            async with self.held(import_id) as mine:
                if not mine:
                    continue
                record = await self.get(import_id)
                if record is None or record.status not in (QUEUED, RUNNING):
                    continue
                with tempfile.TemporaryFile() as copy:
                    await self._copy(import_id, copy)
                    try:
                        await self.run(import_id, copy, batch_size)
                    except (DomainError, FileRefused) as error:  # e.g. the partner is gone
                        await self._fail(import_id, str(error))
                        await self._drop_chunks(import_id)  # the file is personal data
                        continue
                    except ImportGone:
                        continue
                finished += 1
                await self._drop_chunks(import_id)
        return finished

    async def _copy(self, import_id: int, copy: BinaryIO) -> None:
        """The uploaded content into a local file, a chunk at a time."""
        seq = 0
        while (body := await self._chunk(import_id, seq)) is not None:
            copy.write(body)
            seq += 1
        copy.flush()

    async def _chunk(self, import_id: int, seq: int) -> bytes | None:
        return await self.uow.read(lambda c: store.chunk(c, import_id, seq))

    async def _drop_chunks(self, import_id: int) -> None:
        await self.uow.write(lambda c: store.drop_chunks(c, import_id))

    async def _fail(self, import_id: int, message: str) -> None:
        now = self.ledger.clock()
        await self.uow.write(
            lambda c: store.update(
                c, import_id, now, status=FAILED, error=message[:2000], finished_at=now
            )
        )
