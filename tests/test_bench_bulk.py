"""The pure parts of the bulk and import benches: the direct side's per-line earning plan
(bench/bulk_plan.py), the row-count comparison (bench/tables.py) and the import file
(bench/import_file.py)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from bench.bulk_plan import DirectLine, MemberState, Window, plan
from bench.import_file import BAD_EVERY, generate, read_rows, rejected_lines
from bench.tables import differences
from gateway.tiers.rules import window_start
from partners.config.coalition import DEMO_DIRECTORY, load_coalition

NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)
COALITION = load_coalition(DEMO_DIRECTORY)


def fresh_member() -> MemberState:
    assert COALITION.tiers is not None
    return MemberState(window=Window(window_start(COALITION.tiers, NOW), None))


def test_a_member_reaching_gold_earns_its_multiplier_from_their_next_line_on() -> None:
    # Gold at 100 EUR of qualifying value: 8,334 miles at 0.012. 4,200 EUR earns 8,400.
    lines = [
        DirectLine("m1", "k1", Decimal("4200")),
        DirectLine("m1", "k2", Decimal("100")),
        DirectLine("m2", "k3", Decimal("100")),
    ]
    planned = plan(COALITION, "skyway", lines, {"m1": fresh_member(), "m2": fresh_member()}, NOW)

    assert [line.points for line in planned.lines] == [8400, 250, 200]
    assert json.loads(planned.lines[1].breakdown) == [
        ["base", "2 per unit spent", 200],
        ["tier", "gold tier x1.25", 50],
    ]
    assert planned.tiers["m1"].tier == "gold" and "m2" not in planned.tiers
    assert planned.windows["m1"].points == {"skyway": 8650}
    assert planned.windows["m1"].next_leave == NOW


def test_an_unknown_member_or_a_purchase_earning_nothing_fails_alone() -> None:
    lines = [
        DirectLine("nobody", "k1", Decimal("10")),
        DirectLine("m1", "k2", Decimal("0.10")),
        DirectLine("m1", "k3", Decimal("10")),
    ]
    planned = plan(COALITION, "skyway", lines, {"m1": fresh_member()}, NOW)

    assert planned.failed == [(0, "UNKNOWN_MEMBER"), (1, "AMOUNT_TOO_SMALL")]
    assert [(line.index, line.points) for line in planned.lines] == [(2, 20)]


def test_differences_name_only_the_tables_that_changed() -> None:
    before = {"entries": 10, "outbox": 4, "members": 2}
    after = {"entries": 30, "outbox": 14, "members": 2, "purchases": 10}

    assert differences(before, after) == {"entries": 20, "outbox": 10, "purchases": 10}


def test_the_import_file_has_a_bad_line_in_every_thousand(tmp_path: Path) -> None:
    out = io.StringIO()
    generated = generate(out, 4 * BAD_EVERY + 5, members=50)
    rows = list(csv.reader(io.StringIO(out.getvalue())))

    assert generated.bad == 4 and len(rows) == 1 + generated.lines
    assert rows[0] == ["customer_id", "idempotency_key", "amount", "reason"]
    assert len({row[1] for row in rows[1:]}) == generated.lines
    bad = [rows[n] for n in range(BAD_EVERY, len(rows), BAD_EVERY)]
    assert (bad[0][0], bad[0][2]) == ("NOT-ENROLLED", "12.50")
    assert [row[2] for row in bad][1:] == ["-3", "twelve", ""]

    path = tmp_path / "earns.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    batches = list(read_rows(path, 1000))
    assert sum(skipped for _, skipped in batches) == 3  # the unknown customer is posted's
    assert sum(len(rows) for rows, _ in batches) == generated.lines - 3


def test_the_report_counts_its_data_rows(tmp_path: Path) -> None:
    report = tmp_path / "rejected.csv"
    assert rejected_lines(report) == 0
    report.write_text('line_number,idempotency_key,code,message\n3,k,INVALID,"a, b"\n')
    assert rejected_lines(report) == 1
