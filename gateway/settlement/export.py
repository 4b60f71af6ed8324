"""A closed period's statements as CSV: each statement's totals, its bilateral positions,
then its obligations, one line each (``CSV_COLUMNS``)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.settlement.records import Period, Statement


CSV_COLUMNS = (
    "period_id",
    "partner",
    "line",  # total | bilateral | obligation
    "counterparty",
    "kind",
    "amount",
    "currency",
    "obligation_id",
    "created_at",
    "transfer_id",
    "redemption_id",
)


def csv_line(values: Sequence[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue()


def summary_lines(period: Period, statement: Statement) -> list[tuple[object, ...]]:
    """The statement's totals, then its bilateral positions (signed: + owed to it)."""
    head = (period.id, statement.partner)
    totals = [
        ("gross_payable", statement.gross_payable),
        ("gross_receivable", statement.gross_receivable),
        ("fees", statement.fees),
        ("net", statement.net),
    ]
    lines: list[tuple[object, ...]] = [
        (*head, "total", "", kind, amount, period.currency, "", "", "", "")
        for kind, amount in totals
    ]
    lines += [
        (
            *head,
            "bilateral",
            position.counterparty,
            position.direction.value,
            position.net,
            period.currency,
            "",
            "",
            "",
            "",
        )
        for position in statement.positions
    ]
    return lines
