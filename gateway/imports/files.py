"""Earn files, read as a stream: CSV with a header row, or JSON Lines.

Columns (CSV header names; JSON Lines object keys): ``customer_id`` (the member's customer id
at the importing partner) or ``member_id``; ``idempotency_key`` (required); ``amount`` (a
purchase amount) or ``points``; ``lines`` (a purchase's lines: a JSON array of
``{"amount", "sku", "category"}``); ``occurred_at`` (ISO 8601 with an offset); ``reason``.

A file is refused as a whole (nothing posted) when it cannot be read as one: empty, not
UTF-8, an unknown format, or a header with unknown, repeated or missing columns. Anything
wrong with one line (a value, a truncated last line, a line over ``MAX_LINE_BYTES``) rejects
that line alone. Memory stays bounded: a line is read whole only up to ``MAX_LINE_BYTES``.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, BinaryIO, Literal

from gateway.earning.bulk import BulkLine
from gateway.imports.values import bulk_line
from gateway.kernel.errors import DomainError, ErrorCode, shown

Format = Literal["csv", "jsonl"]
FORMATS: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
COLUMNS = (
    "customer_id",
    "member_id",
    "idempotency_key",
    "amount",
    "points",
    "lines",
    "occurred_at",
    "reason",
)
MAX_LINE_BYTES = 1024 * 1024
BOM = codecs.BOM_UTF8
SCAN_BLOCK = 1024 * 1024

# Rejection codes of the file's own form (values use the gateway's ErrorCode).
MALFORMED_LINE = "MALFORMED_LINE"
LINE_TOO_LONG = "LINE_TOO_LONG"


class FileRefused(Exception):
    """The file cannot be imported at all; nothing of it was posted."""


@dataclass(frozen=True)
class Scanned:
    digest: str  # sha256 of the content, hex
    size: int  # bytes


@dataclass(frozen=True)
class Parsed:
    number: int  # the line (CSV: the first line of the record), 1 is the file's first
    line: BulkLine


@dataclass(frozen=True)
class Rejected:
    number: int
    key: str | None
    code: str
    message: str


@dataclass(frozen=True)
class Read:
    """One record of the file, the byte offset just after it and its last line."""

    item: Parsed | Rejected
    end: int
    last: int


def format_of(name: str, given: str | None) -> Format:
    """The format given, or the one the file's extension names."""
    if given is not None:
        if given not in ("csv", "jsonl"):
            raise FileRefused(f"Unknown format {given!r}: csv or jsonl.")
        return "jsonl" if given == "jsonl" else "csv"
    for extension, found in FORMATS.items():
        if name.lower().endswith(extension):
            return found
    raise FileRefused(
        f"Cannot tell the format of {name!r} from its extension (.csv, .jsonl or .ndjson): "
        "give it with --format."
    )


class Utf8Check:
    """Checks a stream of blocks is UTF-8 and digests it; the position of the first bad
    byte (line number and byte offset) is the refusal's message."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._sha = hashlib.sha256()
        self.size = 0
        self._lines = 1

    def feed(self, block: bytes, final: bool = False) -> None:
        try:
            self._decoder.decode(block, final)
        except UnicodeDecodeError as error:
            # The decoder holds back the bytes of a character cut by the previous block.
            held = len(error.object) - len(block)
            offset = self.size - held + error.start
            line = self._lines + error.object[: error.start].count(b"\n")
            raise FileRefused(
                f"The file is not UTF-8: line {line}, byte offset {offset} "
                f"(byte 0x{error.object[error.start]:02x}). Save it as UTF-8."
            ) from None
        self._sha.update(block)
        self.size += len(block)
        self._lines += block.count(b"\n")

    def done(self) -> Scanned:
        self.feed(b"", final=True)
        return Scanned(self._sha.hexdigest(), self.size)


def scan(stream: BinaryIO) -> Scanned:
    """Digest the whole stream, refusing it if it is not UTF-8 (read in blocks)."""
    check = Utf8Check()
    while block := stream.read(SCAN_BLOCK):
        check.feed(block)
    scanned = check.done()
    if scanned.size == 0 or (scanned.size == len(BOM) and _starts_with_bom(stream)):
        raise FileRefused("The file is empty.")
    return scanned


def _starts_with_bom(stream: BinaryIO) -> bool:
    stream.seek(0)
    return stream.read(len(BOM)) == BOM


@dataclass(frozen=True)
class Header:
    format: Format
    columns: tuple[str, ...]  # CSV: in the file's order; JSON Lines: none
    start: int  # the byte offset of the first record
    first_line: int  # its line number


def header_columns(columns: list[str]) -> tuple[str, ...]:
    """The CSV header's columns, checked: known, not repeated, a member, a key and points
    or an amount among them."""
    names = [c.strip() for c in columns]
    unknown = [c for c in names if c not in COLUMNS]
    if unknown:
        raise FileRefused(
            f"Unknown column(s) {', '.join(shown(c) for c in unknown)}; the columns are "
            f"{', '.join(COLUMNS)}."
        )
    repeated = sorted({c for c in names if names.count(c) > 1})
    if repeated:
        raise FileRefused(f"Column(s) given twice: {', '.join(repeated)}.")
    missing = []
    if "idempotency_key" not in names:
        missing.append("idempotency_key")
    if "customer_id" not in names and "member_id" not in names:
        missing.append("customer_id or member_id")
    if "amount" not in names and "points" not in names:
        missing.append("amount or points")
    if missing:
        raise FileRefused(f"Missing column(s): {'; '.join(missing)}.")
    return tuple(names)


def read_header(stream: BinaryIO, format: Format) -> Header:
    """The header (CSV) or the first object's keys (JSON Lines), checked before anything is
    posted."""
    stream.seek(0)
    start = len(BOM) if stream.read(len(BOM)) == BOM else 0
    stream.seek(start)
    number, offset = 1, start
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            raise FileRefused("The file has no header row." if format == "csv" else "No lines.")
        if len(raw) > MAX_LINE_BYTES:
            raise FileRefused(f"Line {number} is longer than {MAX_LINE_BYTES} bytes.")
        text = raw.decode("utf-8")
        if text.strip():
            break
        number, offset = number + 1, offset + len(raw)
    if format == "jsonl":
        try:
            first = json.loads(text)
        except ValueError:
            raise FileRefused(f"Line {number} is not a JSON object.") from None
        if not isinstance(first, dict):
            raise FileRefused(f"Line {number} is not a JSON object.")
        unknown = [k for k in first if k not in COLUMNS]
        if unknown:
            raise FileRefused(
                f"Line {number} has unknown key(s) {', '.join(shown(k) for k in unknown)}; "
                f"the keys are {', '.join(COLUMNS)}."
            )
        return Header(format, (), offset, number)
    try:
        row = next(csv.reader([text], strict=True))
    except csv.Error as error:
        raise FileRefused(f"The header row cannot be read: {error}.") from None
    columns = header_columns(row)
    return Header(format, columns, offset + len(raw), number + 1)


class _TooLong(Exception):
    def __init__(self, number: int, one_line: bool) -> None:
        self.number = number
        self.one_line = one_line  # else a CSV record over several lines (a quote left open?)


class _Lines:
    """The stream's physical lines from ``start``, decoded, with their numbers and the
    offset after the last one taken; a line over the limit is skipped unread (raises)."""

    def __init__(self, stream: BinaryIO, start: int, number: int) -> None:
        self.stream = stream
        self.end = start
        self.number = number - 1  # the line last taken
        self.first = number  # the first line of the record being read
        self.record_bytes = 0
        stream.seek(start)

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raw = self.stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            raise StopIteration
        self.number += 1
        self.end += len(raw)
        self.record_bytes += len(raw)
        if len(raw) > MAX_LINE_BYTES or self.record_bytes > MAX_LINE_BYTES:
            while raw and not raw.endswith(b"\n"):
                raw = self.stream.readline(MAX_LINE_BYTES)
                self.end += len(raw)
            raise _TooLong(self.first, len(raw) > MAX_LINE_BYTES)
        return raw.decode("utf-8")

    def start_record(self) -> None:
        self.first = self.number + 1
        self.record_bytes = 0


def records(
    stream: BinaryIO,
    header: Header,
    partner: str,
    clock: Callable[[], datetime],
    start: int,
    number: int,
) -> Iterator[Read]:
    """Each record from byte ``start`` (line ``number``): parsed, or rejected (dates are
    checked against ``clock`` as each record is read)."""
    lines = _Lines(stream, start, number)
    reader = csv.reader(lines, strict=True) if header.format == "csv" else None
    while True:
        lines.start_record()
        try:
            if reader is None:
                text = next(lines)
                if not text.strip():
                    continue
                item = _json_record(lines.first, text, partner, clock())
            else:
                row = next(reader)
                if not row:
                    continue
                item = _csv_record(lines.first, row, header.columns, partner, clock())
        except StopIteration:
            return
        except _TooLong as error:
            what = "Line" if error.one_line else "The record (a quote left open?) from line"
            item = Rejected(
                error.number,
                None,
                LINE_TOO_LONG,
                f"{what} {error.number} is longer than {MAX_LINE_BYTES} bytes; skipped unread.",
            )
        except csv.Error as error:
            item = Rejected(lines.first, None, MALFORMED_LINE, f"Not a CSV record: {error}.")
        yield Read(item, lines.end, lines.number)


def _csv_record(
    number: int, row: list[str], columns: tuple[str, ...], partner: str, now: datetime
) -> Parsed | Rejected:
    values: dict[str, Any] = {c: v for c, v in zip(columns, row, strict=False) if v != ""}
    key = values.get("idempotency_key")
    if len(row) != len(columns):
        return Rejected(
            number,
            key if isinstance(key, str) else None,
            MALFORMED_LINE,
            f"The record has {len(row)} field(s), the header {len(columns)}.",
        )
    if "lines" in values:
        try:
            values["lines"] = json.loads(values["lines"], parse_float=Decimal)
        except (ValueError, RecursionError):
            return Rejected(number, key, MALFORMED_LINE, "lines is not a JSON array.")
    return _record(number, values, partner, now)


def _json_record(number: int, text: str, partner: str, now: datetime) -> Parsed | Rejected:
    try:
        values = json.loads(text, parse_float=Decimal)
    except (ValueError, RecursionError) as error:
        return Rejected(number, None, MALFORMED_LINE, f"Not a JSON object: {error}.")
    if not isinstance(values, dict):
        return Rejected(number, None, MALFORMED_LINE, "Not a JSON object.")
    key = values.get("idempotency_key")
    unknown = [k for k in values if k not in COLUMNS]
    if unknown:
        return Rejected(
            number,
            key if isinstance(key, str) else None,
            ErrorCode.INVALID_INPUT.value,
            f"Unknown key(s) {', '.join(shown(k) for k in unknown)}.",
        )
    return _record(number, {k: v for k, v in values.items() if v is not None}, partner, now)


def _record(number: int, values: dict[str, Any], partner: str, now: datetime) -> Parsed | Rejected:
    raw_key = values.get("idempotency_key")
    key = raw_key if isinstance(raw_key, str) else None
    try:
        return Parsed(number, bulk_line(values, partner, now))
    except DomainError as error:
        return Rejected(number, key, error.code.value, error.message)
