"""bench/imports.py's file: a CSV of earns with a few bad lines, its rejection report, and
the same rows read back for the direct baseline."""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TextIO

HEADER = ("customer_id", "idempotency_key", "amount", "reason")
# A bad line in every BAD_EVERY, each of another kind in turn: (customer id, amount).
BAD_EVERY = 1000
BAD_KINDS = (
    ("NOT-ENROLLED", "12.50"),  # an unknown customer: refused when posted
    (None, "-3"),  # a negative amount
    (None, "twelve"),  # not a number
    (None, ""),  # no amount nor points
)


def customer_id(number: int) -> str:
    return f"IMP-{number:07d}"


@dataclass(frozen=True)
class Generated:
    lines: int
    bad: int  # lines the import must reject


def generate(out: TextIO, lines: int, members: int, seed: int = 12) -> Generated:
    """``lines`` earns at random members among ``members`` enrolled customers, unique keys,
    amounts 1.00 to 250.00; line i (1-based) is bad when i is a multiple of ``BAD_EVERY``."""
    chance = random.Random(seed)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    bad = 0
    rows = []
    for number in range(1, lines + 1):
        customer = customer_id(chance.randrange(members))
        amount = f"{chance.randrange(100, 25001) / 100:.2f}"
        reason = "till 7" if number % 7 == 0 else ""
        if number % BAD_EVERY == 0:
            wrong_customer, amount = BAD_KINDS[bad % len(BAD_KINDS)]
            customer = wrong_customer or customer
            bad += 1
        rows.append((customer, f"imp-{number}", amount, reason))
        if len(rows) == 10_000:
            writer.writerows(rows)
            rows.clear()
    writer.writerows(rows)
    return Generated(lines, bad)


def rejected_lines(report: Path) -> int:
    """The data rows of the import's rejection report (0 when it wrote none)."""
    if not report.exists():
        return 0
    with report.open(newline="", encoding="utf-8") as stream:
        return max(sum(1 for _ in csv.reader(stream)) - 1, 0)


@dataclass(frozen=True)
class Row:
    customer_id: str
    key: str
    amount: Decimal
    reason: str | None


def read_rows(path: Path, batch: int) -> Iterator[tuple[list[Row], int]]:
    """The file's good rows in batches, each with how many bad lines were skipped in it
    (an amount that is no positive number; unknown customers are the caller's to find)."""
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        rows: list[Row] = []
        skipped = 0
        for record in reader:
            try:
                amount = Decimal(record["amount"])
            except InvalidOperation:
                amount = Decimal(0)
            if not amount.is_finite() or amount <= 0:
                skipped += 1
            else:
                rows.append(
                    Row(
                        record["customer_id"],
                        record["idempotency_key"],
                        amount,
                        record["reason"] or None,
                    )
                )
            if len(rows) + skipped >= batch:
                yield rows, skipped
                rows, skipped = [], 0
        if rows or skipped:
            yield rows, skipped
