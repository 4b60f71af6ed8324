"""`coalition import earns FILE --partner SLUG`: a file of earns posted in batches, with a
progress bar on stderr, a summary, and a report of the rejected lines.

Exit codes: 0 the import completed (rejected lines or not), 1 the file cannot be imported
(nothing of it was posted) or the database failed, 2 a usage error (no such file, partner
or format), 3 stopped (Ctrl-C, SIGTERM) after a committed batch: run the same command again
to carry on.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TextIO

from gateway.api.cli_database import with_database
from gateway.api.configured import configured_ledger
from gateway.api.runtime import tune_gc
from gateway.api.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from gateway.imports.files import Scanned
    from gateway.imports.service import ImportService
    from gateway.imports.store import ImportRecord

STOPPED = 3


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("import", help="import files (earns) for a partner")
    kinds = group.add_subparsers(dest="action", required=True)
    earns = kinds.add_parser(
        "earns",
        help="post a CSV or JSON Lines file of earns in batches; run again to resume",
        description="Columns: customer_id or member_id, idempotency_key, amount or points, "
        "lines (JSON array), occurred_at (ISO 8601 with an offset), reason. See README.",
    )
    earns.add_argument("file", metavar="FILE")
    earns.add_argument("--partner", metavar="SLUG", required=True)
    earns.add_argument("--format", choices=["csv", "jsonl"], help="default: from the extension")
    earns.add_argument(
        "--batch-size", type=_batch_size, default=5000, metavar="N", help="1..10000 (5000)"
    )
    earns.add_argument("--report", metavar="PATH", help="default: FILE.rejected.csv")


def _batch_size(text: str) -> int:
    from gateway.earning.bulk import MAX_BULK

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= MAX_BULK:
        raise argparse.ArgumentTypeError(f"between 1 and {MAX_BULK}")
    return value


async def _import_service(engine: AsyncEngine, settings: Settings) -> ImportService:
    from gateway.earning.service import EarningService
    from gateway.imports.service import ImportService
    from gateway.tiers.service import TierService

    ledger = await configured_ledger(engine, settings)
    tiers = TierService(ledger) if ledger.coalition.tiers is not None else None
    return ImportService(EarningService(ledger, tiers))


class _Bar:
    """Progress by bytes (the ETA) with lines and lines/s: a bar on a terminal, a line per
    batch otherwise (logs)."""

    def __init__(self, size: int, done: int, lines: int) -> None:
        self.size, self.first_lines, self.started = size, lines, time.monotonic()
        self.live = sys.stderr.isatty()
        self._progress = None
        if self.live:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("importing"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[lines]:,} lines, {task.fields[rate]:,.0f} lines/s"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._task = self._progress.add_task(
                "import", total=size, completed=done, lines=0, rate=0
            )
            self._progress.start()

    def update(self, record: ImportRecord) -> None:
        seconds = max(time.monotonic() - self.started, 1e-6)
        rate = (record.lines_read - self.first_lines) / seconds
        if self._progress is not None:
            self._progress.update(
                self._task, completed=record.byte_offset, lines=record.lines_read, rate=rate
            )
            return
        share = record.progress * 100
        print(f"  {record.lines_read:,} lines ({share:.0f}%), {rate:,.0f} lines/s", file=sys.stderr)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def import_earns(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.imports.files import FileRefused, format_of, read_header, scan
    from gateway.imports.service import ImportBusy
    from gateway.kernel.errors import DomainError

    path = Path(args.file)
    if not path.is_file():
        print(f"error: no such file: {path}", file=sys.stderr)
        return 2
    try:
        format = format_of(path.name, args.format)
    except FileRefused as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report = Path(args.report) if args.report else path.with_name(path.name + ".rejected.csv")
    part = report.with_name(report.name + ".part")
    try:
        with path.open("rb") as stream:
            scanned = scan(stream)
            read_header(stream, format)
            with part.open("w", newline="", encoding="utf-8") as out:
                code, rejected = with_database(
                    settings,
                    lambda engine: _import(engine, settings, args, path, scanned, stream, out),
                )
    except FileRefused as error:
        print(f"error: {path}: {error} Nothing was imported.", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ImportBusy as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except DomainError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    finally:
        if part.exists() and not _has_rows(part):
            part.unlink()
    if part.exists():
        part.replace(report)
        print(f"Rejected lines ({rejected}): {report}")
    elif report.exists():
        report.unlink()  # an older report of this file: the import has no rejected line
    return code


def _has_rows(part: Path) -> bool:
    with part.open("rb") as file:
        return bool(file.readline()) and bool(file.readline())


async def _import(
    engine: AsyncEngine,
    settings: Settings,
    args: argparse.Namespace,
    path: Path,
    scanned: Scanned,
    stream: BinaryIO,
    out: TextIO,
) -> tuple[int, int]:
    """The import run (or resumed); the exit code and how many lines were rejected."""
    from gateway.imports.files import format_of
    from gateway.imports.service import ImportBusy, ImportGone
    from gateway.imports.store import DONE
    from gateway.kernel.errors import DomainError

    service = await _import_service(engine, settings)
    if service.ledger.coalition.partner(args.partner) is None:
        print(f"error: no partner {args.partner!r} in the coalition", file=sys.stderr)
        return 2, 0
    await service.ledger.start()
    tune_gc()
    format = format_of(path.name, args.format)
    opened = await service.open(args.partner, str(path), format, scanned)
    record = opened.record
    if record.status == DONE:
        print(
            f"{path} was imported already (import {record.id}, finished "
            f"{record.finished_at or record.updated_at:%Y-%m-%d %H:%M:%S %Z}): nothing "
            "posted now."
        )
        _summary(record, None)
        await _write_report(service, record, out)
        return 0, record.rejected
    if not opened.created:
        print(f"Resuming import {record.id} after line {record.position}.", file=sys.stderr)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    running = asyncio.current_task()

    def stop() -> None:
        if stopping.is_set():  # a second Ctrl-C: now (the batch in flight rolls back)
            print("\nStopping now…", file=sys.stderr)
            if running is not None:
                running.cancel()
            return
        print("\nStopping after the current batch (Ctrl-C again: now)…", file=sys.stderr)
        stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    async with service.held(record.id) as mine:
        if not mine:
            raise ImportBusy(f"Import {record.id} of this file is being run by another process.")
        started = time.monotonic()
        bar = _Bar(record.size, record.byte_offset, record.lines_read)
        try:
            record = await service.run(
                record.id, stream, args.batch_size, bar.update, stopping.is_set
            )
        except asyncio.CancelledError:
            found = await service.get(record.id)
            assert found is not None
            record = found
        except (DomainError, ImportGone) as error:
            print(f"error: {error}", file=sys.stderr)
            found = await service.get(record.id)
            assert found is not None
            record = found
        finally:
            bar.close()
        seconds = time.monotonic() - started
    _summary(record, seconds, record.lines_read - opened.record.lines_read)
    await _write_report(service, record, out)
    if record.status != DONE:
        command = " ".join(shlex.quote(a) for a in sys.argv[1:])
        print(
            f"Stopped after line {record.position}: every line up to it is imported. "
            f"To carry on, run the same command again: coalition {command}",
            file=sys.stderr,
        )
        return STOPPED, record.rejected
    return 0, record.rejected


def _summary(record: ImportRecord, seconds: float | None, lines: int = 0) -> None:
    print(
        f"Import {record.id} ({record.status}): {record.lines_read} lines read, "
        f"{record.posted} posted, {record.replayed} replayed, {record.rejected} rejected."
    )
    if seconds is not None:
        rate = lines / seconds if seconds > 0 else 0.0
        print(f"This run: {lines} lines in {seconds:.1f} s ({rate:,.0f} lines/s).")


async def _write_report(service: ImportService, record: ImportRecord, out: TextIO) -> None:
    """Every rejected line of the import so far, as CSV (a page at a time)."""
    if record.rejected == 0:
        return
    writer = csv.writer(out)
    writer.writerow(["line_number", "idempotency_key", "code", "message"])
    after = 0
    while page := await service.rejections(record.id, after, 10_000):
        writer.writerows([r.number, r.key or "", r.code, r.message] for r in page)
        after = page[-1].number
