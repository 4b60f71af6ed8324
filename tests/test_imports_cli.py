"""`coalition import earns`: real files, the command run as a process against the test
gateway's database (SQLite and PostgreSQL), balances read back from the ledger."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import signal
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.imports.tables import imports
from gateway.ledger.tables import transfers
from tests.conftest import CORE_DIRECTORY, Gateway

PARTNER = "brewbar"


@dataclass
class Ran:
    code: int
    out: str
    err: str


def _environment(gateway: Gateway) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": str(gateway.service.engine.url.render_as_string(hide_password=False)),
        "COALITION_CONFIG_DIR": str(CORE_DIRECTORY),
        "COALITION_DEMO_DATA": "false",
    }


async def start(gateway: Gateway, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.api.cli",
        "import",
        "earns",
        *args,
        env=_environment(gateway),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def run(gateway: Gateway, *args: str) -> Ran:
    process = await start(gateway, *args)
    out, err = await process.communicate()
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


async def enrol(gateway: Gateway, count: int) -> dict[str, str]:
    """Customers c0.. enrolled at the partner: customer id -> member id."""
    found = {}
    for i in range(count):
        enrolled = await gateway.service.enrol(PARTNER, f"c{i}")
        found[f"c{i}"] = enrolled.member.id
    return found


async def balances(gateway: Gateway, members: dict[str, str]) -> dict[str, int]:
    wallets = await gateway.service.wallets(list(members.values()))
    by_member = {
        member: sum(w.balance for w in wallets.get(member, []) if w.pool == PARTNER)
        for member in members.values()
    }
    return {customer: by_member[member] for customer, member in members.items()}


async def earn_count(gateway: Gateway) -> int:
    async with gateway.service.engine.connect() as connection:
        found = await connection.scalar(
            sa.select(sa.func.count()).select_from(transfers).where(transfers.c.kind == "earn")
        )
    return int(found or 0)


def write_csv(path: Path, rows: list[list[str]], header: str) -> Path:
    with path.open("w", newline="") as file:
        file.write(header + "\n")
        csv.writer(file).writerows(rows)
    return path


def report_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def recently(days: int = 1) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


async def test_an_import_posts_good_lines_and_reports_each_bad_one(
    gateway: Gateway, tmp_path: Path
) -> None:
    members = await enrol(gateway, 3)
    rows = [
        ["c0", "k1", "", "10", "", "a gift"],
        ["c1", "k2", "12.50", "", recently(), ""],
        ["c2", "k3", "-3", "", "", ""],  # line 4: a negative amount
        ["c0", "k4", "5", "7", "", ""],  # both
        ["c0", "k5", "", "", "", ""],  # neither
        ["c0", "k6", "", "4", "yesterday", ""],  # not a date
        ["c0", "k7", "", "4", (datetime.now(UTC) + timedelta(days=2)).isoformat(), ""],
        ["c0", "", "", "4", "", ""],  # no key
        ["c9", "k9", "", "4", "", ""],  # not enrolled
        ["c2", "k10", "", "3", recently(400), ""],  # too old
        ["c2", "k11", "", "2", "2026-06-01T10:00:00", ""],  # no offset
    ]
    path = write_csv(
        tmp_path / "earns.csv", rows, "customer_id,idempotency_key,amount,points,occurred_at,reason"
    )
    with path.open("a") as file:
        file.write('c1,"k12,3')  # the last line cut short: its quote never closes
    ran = await run(gateway, str(path), "--partner", PARTNER, "--batch-size", "4")
    assert ran.code == 0, ran.err
    assert "12 lines read, 2 posted, 0 replayed, 10 rejected" in ran.out
    rejected = {int(r["line_number"]): r for r in report_rows(tmp_path / "earns.csv.rejected.csv")}
    assert {n: r["code"] for n, r in rejected.items()} == {
        4: "AMOUNT_NOT_POSITIVE",
        5: "INVALID_INPUT",
        6: "INVALID_INPUT",
        7: "INVALID_INPUT",
        8: "INVALID_INPUT",
        9: "INVALID_INPUT",
        10: "UNKNOWN_MEMBER",
        11: "INVALID_INPUT",
        12: "INVALID_INPUT",
        13: "MALFORMED_LINE",
    }
    assert rejected[4]["idempotency_key"] == "k3"
    assert "either amount or points" in rejected[5]["message"]
    assert "ISO 8601" in rejected[7]["message"]
    assert "future" in rejected[8]["message"]
    assert "required" in rejected[9]["message"]
    assert "ago" in rejected[11]["message"]
    assert "offset" in rejected[12]["message"]
    found = await balances(gateway, members)
    assert found["c0"] == 10 and found["c1"] > 0 and found["c2"] == 0


async def test_a_resent_file_posts_nothing_twice(gateway: Gateway, tmp_path: Path) -> None:
    members = await enrol(gateway, 2)
    rows = [[f"c{i % 2}", f"r{i}", str(i + 1)] for i in range(20)]
    path = write_csv(tmp_path / "earns.csv", rows, "customer_id,idempotency_key,points")
    first = await run(gateway, str(path), "--partner", PARTNER, "--batch-size", "7")
    assert first.code == 0, first.err
    assert "20 lines read, 20 posted, 0 replayed, 0 rejected" in first.out
    before = await balances(gateway, members)
    assert before == {"c0": sum(range(1, 21, 2)), "c1": sum(range(2, 21, 2))}
    again = await run(gateway, str(path), "--partner", PARTNER)
    assert again.code == 0
    assert "was imported already" in again.out and "nothing posted now" in again.out
    # The same lines in another file (another digest): each comes back as a replay.
    shuffled = write_csv(tmp_path / "again.csv", rows[::-1], "customer_id,idempotency_key,points")
    replay = await run(gateway, str(shuffled), "--partner", PARTNER)
    assert replay.code == 0, replay.err
    assert "20 lines read, 0 posted, 20 replayed, 0 rejected" in replay.out
    assert await balances(gateway, members) == before
    assert await earn_count(gateway) == 20


async def _position(gateway: Gateway) -> int:
    async with gateway.service.engine.connect() as connection:
        found = await connection.scalar(sa.select(sa.func.max(imports.c.position)))
    return int(found or 0)


async def test_an_import_killed_part_way_carries_on_where_it_stopped(
    gateway: Gateway, tmp_path: Path
) -> None:
    members = await enrol(gateway, 20)
    lines = 1200
    path = tmp_path / "big.jsonl"
    with path.open("w") as file:
        for i in range(lines):
            row = {"customer_id": f"c{i % 20}", "idempotency_key": f"big-{i}", "points": i % 7 + 1}
            file.write(json.dumps(row) + "\n")
    process = await start(gateway, str(path), "--partner", PARTNER, "--batch-size", "40")
    while await _position(gateway) == 0:  # the first batch's checkpoint
        assert process.returncode is None, await process.communicate()
        await asyncio.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    await process.communicate()
    stopped_at = await _position(gateway)
    assert 0 < stopped_at < lines
    resumed = await run(gateway, str(path), "--partner", PARTNER, "--batch-size", "40")
    assert resumed.code == 0, resumed.err
    assert "Resuming import" in resumed.err
    summary = re.search(
        r"(\d+) lines read, (\d+) posted, (\d+) replayed, (\d+) rejected", resumed.out
    )
    assert summary is not None, resumed.out
    read, posted, replayed, rejected = map(int, summary.groups())
    # A batch that committed just before the kill, its checkpoint not, came back as replays.
    assert (read, posted + replayed, rejected) == (lines, lines, 0)
    expected = {f"c{m}": sum(i % 7 + 1 for i in range(m, lines, 20)) for m in range(20)}
    assert await balances(gateway, members) == expected
    assert await earn_count(gateway) == lines  # every line posted exactly once


async def test_sigterm_stops_after_a_batch_and_says_how_to_resume(
    gateway: Gateway, tmp_path: Path
) -> None:
    members = await enrol(gateway, 5)
    rows = [[f"c{i % 5}", f"t{i}", "2"] for i in range(400)]
    path = write_csv(tmp_path / "earns.csv", rows, "customer_id,idempotency_key,points")
    process = await start(gateway, str(path), "--partner", PARTNER, "--batch-size", "20")
    while await _position(gateway) == 0:
        assert process.returncode is None, await process.communicate()
        await asyncio.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    out, err = await process.communicate()
    if process.returncode == 0:  # it finished before the signal arrived
        pytest.skip("the import finished before it was stopped")
    assert process.returncode == 3, err
    assert "run the same command again" in err.decode()
    assert "(running)" in out.decode()
    resumed = await run(gateway, str(path), "--partner", PARTNER, "--batch-size", "20")
    assert resumed.code == 0, resumed.err
    assert "400 lines read, " in resumed.out
    assert sum((await balances(gateway, members)).values()) == 800


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"customer,idempotency_key,points\nc0,k,1\n", "Unknown column(s) 'customer'"),
        (b"customer_id,points\nc0,1\n", "Missing column(s): idempotency_key"),
        (b"customer_id,idempotency_key,points,points\nc0,k,1,1\n", "given twice: points"),
        (b"", "The file is empty"),
        (
            b"customer_id,idempotency_key,points\nc0,k1,1\nc\xe9,k2,1\n",
            "not UTF-8: line 3, byte offset 44",
        ),
    ],
)
async def test_a_broken_file_is_refused_before_anything_is_posted(
    gateway: Gateway, tmp_path: Path, content: bytes, message: str
) -> None:
    await enrol(gateway, 1)
    path = tmp_path / "broken.csv"
    path.write_bytes(content)
    ran = await run(gateway, str(path), "--partner", PARTNER)
    assert ran.code == 1
    assert message in ran.err and "Nothing was imported." in ran.err
    assert "Traceback" not in ran.err
    assert await earn_count(gateway) == 0
    assert not (tmp_path / "broken.csv.rejected.csv").exists()


async def test_a_truncated_line_and_a_10_mb_line_are_rejected_alone(
    gateway: Gateway, tmp_path: Path
) -> None:
    members = await enrol(gateway, 1)
    path = tmp_path / "earns.ndjson"
    with path.open("w") as file:
        file.write('{"customer_id": "c0", "idempotency_key": "a", "points": 1}\n')
        file.write('{"customer_id": "c0", "idempotency_key": "b", "reason": "')
        file.write("x" * (10 * 1024 * 1024) + '", "points": 2}\n')
        file.write('{"customer_id": "c0", "idempotency_key": "c", "points": 4}\n')
        file.write('{"customer_id": "c0", "idempotency_key": "d", "points": 8')  # cut short
    report = tmp_path / "report.csv"
    ran = await run(gateway, str(path), "--partner", PARTNER, "--report", str(report))
    assert ran.code == 0, ran.err
    assert "4 lines read, 2 posted, 0 replayed, 2 rejected" in ran.out
    rejected = report_rows(report)
    assert [(r["line_number"], r["code"]) for r in rejected] == [
        ("2", "LINE_TOO_LONG"),
        ("4", "MALFORMED_LINE"),
    ]
    assert "longer than 1048576 bytes" in rejected[0]["message"]
    assert (await balances(gateway, members))["c0"] == 5


async def test_a_bom_member_ids_and_purchase_lines(gateway: Gateway, tmp_path: Path) -> None:
    members = await enrol(gateway, 2)
    lines = json.dumps([{"amount": "10", "sku": "latte"}, {"amount": "5", "category": "food"}])
    path = tmp_path / "earns.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["member_id", "idempotency_key", "amount", "lines", "reason"])
        writer.writerow([members["c0"], "p1", "15", lines, "till 4"])
        writer.writerow([members["c1"], "p2", "3", "", ""])
        writer.writerow(["not-a-member", "p3", "3", "", ""])
    ran = await run(gateway, str(path), "--partner", PARTNER)
    assert ran.code == 0, ran.err
    assert "3 lines read, 2 posted, 0 replayed, 1 rejected" in ran.out
    found = await balances(gateway, members)
    # 15 and 3 EUR at one star per EUR (times the promotion running now, if any)
    assert found["c1"] > 0 and found["c0"] == 5 * found["c1"]


async def test_usage_errors_exit_2(gateway: Gateway, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "earns.txt", [["c0", "k", "1"]], "customer_id,idempotency_key,points"
    )
    no_format = await run(gateway, str(path), "--partner", PARTNER)
    assert no_format.code == 2 and "--format" in no_format.err
    no_partner = await run(gateway, str(path), "--partner", "nobody", "--format", "csv")
    assert no_partner.code == 2 and "no partner 'nobody'" in no_partner.err
    no_file = await run(gateway, str(tmp_path / "gone.csv"), "--partner", PARTNER)
    assert no_file.code == 2 and "no such file" in no_file.err
    too_big = await run(gateway, str(path), "--partner", PARTNER, "--batch-size", "20000")
    assert too_big.code == 2 and "between 1 and 10000" in too_big.err


async def test_two_runs_of_one_file_at_once_post_each_line_once(
    gateway: Gateway, tmp_path: Path
) -> None:
    members = await enrol(gateway, 4)
    rows = [[f"c{i % 4}", f"twice-{i}", "3"] for i in range(300)]
    path = write_csv(tmp_path / "earns.csv", rows, "customer_id,idempotency_key,points")
    both = [
        await start(gateway, str(path), "--partner", PARTNER, "--batch-size", "25")
        for _ in range(2)
    ]
    outcomes = [await process.communicate() for process in both]
    codes = sorted(process.returncode or 0 for process in both)
    # The one that lost found the import done, or was told another process runs it (held:
    # exit 1; on SQLite, which has no lock, it stops at its first checkpoint: exit 3).
    assert codes in ([0, 0], [0, 1], [0, 3]), outcomes
    for (_, err), process in zip(outcomes, both, strict=True):
        if process.returncode:
            assert b"another" in err, err
    async with gateway.service.engine.connect() as connection:
        assert await connection.scalar(sa.select(sa.func.count()).select_from(imports)) == 1
    assert await earn_count(gateway) == 300
    assert sum((await balances(gateway, members)).values()) == 900
