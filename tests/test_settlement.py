"""Settlement over HTTP, on SQLite and PostgreSQL (issue 4): obligations from cross-brand
rewards and conversions, closing periods (retries, order, later postings), exact statements,
fees and bilateral pairs, who may see what, the CSV download, the CLI, reconciliation, and
closes racing each other and racing postings (PostgreSQL)."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from gateway.api.cli import main
from gateway.ledger.service import utcnow
from gateway.ledger.tables import obligations
from gateway.settlement.service import SettlementService
from gateway.settlement.statement_sql import aggregate
from tests.conftest import Clock, Gateway, start_gateway
from tests.operations import ERRORS, REVERSE, codes, payload
from tests.sso import CLOCK, Brands
from tests.test_api import convert, earn, enrol

T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)  # the clock fixture's start: every posting below
END = "2026-06-01T13:00:00+00:00"

CREATE_REWARD = f"""
mutation($input: CreateRewardInput!) {{
  createReward(input: $input) {{ reward {{ id }} {ERRORS} }}
}}"""
REDEEM_REWARD = f"""
mutation($input: RedeemRewardInput!) {{
  redeemReward(input: $input) {{
    receipt {{ paidPoints pricePoints conversion {{ id fee receivedPoints }} }} {ERRORS}
  }}
}}"""
PERIOD_FIELDS = "id number opensAt closesAt closedAt closedBy currency obligationCount"
CLOSE = f"""
mutation($end: DateTime!) {{
  closeSettlementPeriod(input: {{periodEnd: $end}}) {{
    period {{ {PERIOD_FIELDS} }} idempotentReplay {ERRORS}
  }}
}}"""
STATEMENT_FIELDS = """
  periodNumber partner obligationCount csvPath
  grossPayable { amount currency } grossReceivable { amount } fees { amount } net { amount }
  bilateral { counterparty direction net { amount } amount { amount } }
"""
STATEMENT = f"""
query($period: ID!, $partner: String!) {{
  settlementStatement(periodId: $period, partner: $partner) {{ {STATEMENT_FIELDS} }}
}}"""
PERIODS = f"""
{{ settlementPeriods {{ {PERIOD_FIELDS} statements {{ partner net {{ amount }} }} }} }}"""


# Helpers


def amount(money: dict[str, Any]) -> Decimal:
    return Decimal(money["amount"])


async def close(gateway: Gateway, end: str, token: str | None = None) -> dict[str, Any]:
    return payload(await gateway.gql(CLOSE, {"end": end}, token=token))


async def statement(
    gateway: Gateway, period: str | int, partner: str, token: str | None = None
) -> dict[str, Any] | None:
    body = await gateway.gql(STATEMENT, {"period": str(period), "partner": partner}, token=token)
    found: dict[str, Any] | None = body["data"]["settlementStatement"]
    return found


def figures(found: dict[str, Any] | None) -> dict[str, Any]:
    """A statement's numbers, exact, and its pairs as {counterparty: (direction, net)}."""
    assert found is not None
    return {
        "payable": amount(found["grossPayable"]),
        "receivable": amount(found["grossReceivable"]),
        "fees": amount(found["fees"]),
        "net": amount(found["net"]),
        "count": found["obligationCount"],
        "pairs": {
            p["counterparty"]: (p["direction"], amount(p["net"])) for p in found["bilateral"]
        },
    }


async def create_reward(gateway: Gateway, partner: str = "brewbar", value: str = "1.80") -> str:
    reward = {"kind": "FREE_PRODUCT", "name": "Cappuccino", "pricePoints": 50, "value": value}
    result = payload(
        await gateway.gql(CREATE_REWARD, {"input": {"partner": partner, "reward": reward}})
    )
    assert result["userErrors"] == []
    reward_id: str = result["reward"]["id"]
    return reward_id


async def redeem_reward(
    gateway: Gateway, reward: str, member: str, pay_with: str, key: str
) -> dict[str, Any]:
    data = {"rewardId": reward, "member": {"id": member}, "payWith": pay_with}
    data["idempotencyKey"] = key
    result = payload(await gateway.gql(REDEEM_REWARD, {"input": data}))
    assert result["userErrors"] == [], result
    return result


async def movements(gateway: Gateway) -> str:
    """At T0: 2000 miles earned at skyway; 300 miles converted into brewbar stars (fee 6
    miles, 73 stars: skyway owes brewbar 73 x 0.04 = 2.92); a brewbar reward worth 1.80
    paid with 205 miles (fee 5, 50 stars: skyway owes brewbar 1.80); 20 stars converted
    into miles (fee 1 star, 57 miles: brewbar owes skyway 57 x 0.012 = 0.684)."""
    member = await enrol(gateway)
    assert (await earn(gateway, member, 2000, "E-1"))["userErrors"] == []
    conversion = await convert(gateway, member, 300, "C-1")
    assert conversion["transfer"]["fee"] == 6 and conversion["transfer"]["receivedPoints"] == 73
    reward = await create_reward(gateway)
    receipt = (await redeem_reward(gateway, reward, member, "skyway", "R-1"))["receipt"]
    assert receipt["paidPoints"] == 205 and receipt["conversion"]["fee"] == 5
    back = await convert(gateway, member, 20, "C-2", source="brewbar", target="skyway")
    assert back["transfer"]["fee"] == 1 and back["transfer"]["receivedPoints"] == 57
    return member


async def rows(gateway: Gateway, query: str, **params: Any) -> list[Any]:
    async with gateway.service.engine.begin() as connection:
        return list((await connection.execute(sa.text(query), params)).all())


async def execute(gateway: Gateway, statement_sql: str) -> None:
    async with gateway.service.engine.begin() as connection:
        await connection.execute(sa.text(statement_sql))


def settlement(gateway: Gateway) -> SettlementService:
    service: SettlementService = gateway.app.state.settlement
    return service


SKYWAY_1 = {
    "payable": Decimal("4.72"),  # 2.92 + 1.80
    "receivable": Decimal("0.684"),
    "fees": Decimal("1.132"),  # 2000 x 0.0005 issued, (6 + 5) x 0.012 on conversions
    "net": Decimal("-5.168"),
    "count": 5,  # three movements and two fees
    "pairs": {
        "brewbar": ("PAYABLE", Decimal("-4.036")),
        "operator": ("PAYABLE", Decimal("-1.132")),
    },
}
BREWBAR_1 = {
    "payable": Decimal("0.684"),
    "receivable": Decimal("4.72"),
    "fees": Decimal("0.04"),  # 1 star x 0.04 on its conversion
    "net": Decimal("3.996"),
    "count": 4,
    "pairs": {
        "skyway": ("RECEIVABLE", Decimal("4.036")),
        "operator": ("PAYABLE", Decimal("-0.04")),
    },
}


# 1. Obligations and the close


async def test_movements_record_their_obligations(gateway: Gateway):
    await movements(gateway)
    found = await rows(
        gateway,
        "SELECT kind, debtor, creditor, amount, statement_period FROM obligations ORDER BY id",
    )
    assert [(r[0], r[1], r[2], Decimal(r[3]), r[4]) for r in found] == [
        ("conversion", "skyway", "brewbar", Decimal("2.92"), None),
        ("reward", "skyway", "brewbar", Decimal("1.80"), None),
        ("conversion", "brewbar", "skyway", Decimal("0.684"), None),
    ]


async def test_a_close_puts_every_obligation_in_exactly_one_statement(
    gateway: Gateway, clock: Clock
):
    await movements(gateway)
    clock.now = T0 + timedelta(hours=2)
    result = await close(gateway, END)
    assert result["userErrors"] == [] and result["idempotentReplay"] is False
    period = result["period"]
    assert period["number"] == 1 and period["opensAt"] is None
    assert period["closesAt"] == END and period["currency"] == "EUR"
    assert period["obligationCount"] == 6  # three movements, three fees
    assert period["closedBy"] == "operator:test-operator"
    assert await rows(
        gateway, "SELECT COUNT(*), MIN(statement_period), MAX(statement_period) FROM obligations"
    ) == [(6, 1, 1)]
    fees = await rows(
        gateway,
        "SELECT kind, debtor, creditor, amount FROM obligations "
        "WHERE kind LIKE '%fee' ORDER BY debtor, kind",
    )
    assert [(r[0], r[1], r[2], Decimal(r[3])) for r in fees] == [
        ("conversion_fee", "brewbar", "operator", Decimal("0.04")),
        ("conversion_fee", "skyway", "operator", Decimal("0.132")),
        ("issuance_fee", "skyway", "operator", Decimal("1.0")),
    ]
    assert figures(await statement(gateway, period["id"], "skyway")) == SKYWAY_1
    assert figures(await statement(gateway, 1, "brewbar")) == BREWBAR_1  # by number too
    freshmart = figures(await statement(gateway, 1, "freshmart"))
    assert freshmart == {
        "payable": 0,
        "receivable": 0,
        "fees": 0,
        "net": 0,
        "count": 0,
        "pairs": {},
    }
    assert await statement(gateway, 1, "nobody") is None
    assert await statement(gateway, 2, "skyway") is None
    assert await settlement(gateway).reconcile() == []


async def test_a_retried_close_is_a_replay_and_an_earlier_or_future_end_is_refused(
    gateway: Gateway, clock: Clock
):
    await movements(gateway)
    clock.now = T0 + timedelta(hours=2)
    first = await close(gateway, END)
    again = await close(gateway, END)
    assert again["idempotentReplay"] is True and again["userErrors"] == []
    assert again["period"] == first["period"]
    earlier = await close(gateway, "2026-06-01T12:30:00Z")
    assert codes(earlier) == ["PERIOD_NOT_AFTER_LAST"] and earlier["period"] is None
    assert earlier["userErrors"][0]["field"] == ["input", "periodEnd"]
    future = await close(gateway, "2026-06-01T15:00:00Z")
    assert codes(future) == ["PERIOD_NOT_ENDED"]
    naive = await gateway.gql(CLOSE, {"end": "2026-06-01T13:30:00"}, status=400, errors=True)
    assert "UTC offset" in naive["errors"][0]["message"]  # refused by the DateTime scalar
    assert naive["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    periods = (await gateway.gql(PERIODS))["data"]["settlementPeriods"]
    assert [p["number"] for p in periods] == [1]
    assert figures(await statement(gateway, 1, "skyway")) == SKYWAY_1


async def test_later_postings_fall_into_the_next_period_and_corrections_too(
    gateway: Gateway, clock: Clock
):
    member = await enrol(gateway)
    assert (await earn(gateway, member, 1000, "E-1"))["userErrors"] == []
    conversion = await convert(gateway, member, 300, "C-1")  # at T0: 2.92, fee 0.072
    clock.now = T0 + timedelta(minutes=30)
    assert (await earn(gateway, member, 400, "E-2"))["userErrors"] == []
    await convert(gateway, member, 200, "C-2")  # fee 4, 49 stars: 1.96
    first = (await close(gateway, "2026-06-01T12:15:00Z"))["period"]
    assert first["obligationCount"] == 3  # the first conversion and two fees
    one = figures(await statement(gateway, 1, "skyway"))
    assert (one["payable"], one["fees"], one["net"]) == (
        Decimal("2.92"),
        Decimal("0.572"),  # 1000 x 0.0005 + 6 x 0.012
        Decimal("-3.492"),
    )
    # A correction after the close: reversing the first conversion gives its value and
    # its fee back, in the next period; the closed one does not change.
    reversal = payload(
        await gateway.gql(
            REVERSE,
            {"input": {"transferId": conversion["transfer"]["id"], "idempotencyKey": "V-1"}},
        )
    )
    assert reversal["userErrors"] == []
    clock.now = T0 + timedelta(hours=1)
    second = (await close(gateway, "2026-06-01T12:45:00Z"))["period"]
    assert second["number"] == 2 and second["opensAt"] == "2026-06-01T12:15:00+00:00"
    two = figures(await statement(gateway, 2, "skyway"))
    assert two == {
        "payable": Decimal("1.96"),
        "receivable": Decimal("2.92"),  # the reversed conversion: brewbar owes it back
        # 400 x 0.0005 issued; conversion fees: +4 x 0.012, -6 x 0.012 refunded
        "fees": Decimal("0.176"),
        "net": Decimal("0.784"),
        "count": 4,
        "pairs": {
            "brewbar": ("RECEIVABLE", Decimal("0.96")),
            "operator": ("PAYABLE", Decimal("-0.176")),
        },
    }
    assert figures(await statement(gateway, 1, "skyway")) == one
    assert await rows(
        gateway, "SELECT statement_period, COUNT(*) FROM obligations GROUP BY 1 ORDER BY 1"
    ) == [(1, 3), (2, 4)]
    assert await settlement(gateway).reconcile() == []


async def test_a_closed_period_cannot_change(gateway: Gateway, clock: Clock):
    await movements(gateway)
    clock.now = T0 + timedelta(hours=2)
    await close(gateway, END)
    for change in (
        "UPDATE obligations SET amount = '0' WHERE kind = 'reward'",
        "DELETE FROM obligations WHERE kind = 'reward'",
        "UPDATE obligations SET statement_period = NULL",
        "UPDATE statements SET net = 0",
        "DELETE FROM statement_pairs",
        "DELETE FROM settlement_periods",
    ):
        with pytest.raises(DBAPIError, match="immutable"):
            await execute(gateway, change)
    assert figures(await statement(gateway, 1, "skyway")) == SKYWAY_1


async def test_sums_are_exact_to_the_millionth_and_both_databases_agree(
    gateway: Gateway, clock: Clock
):
    # Amounts as obligations may hold them: past 6 places, in exponent form; one pair even.
    owed = [
        ("reward", "skyway", "brewbar", "1.0000005"),  # counted 1.000001 (half up)
        ("conversion", "brewbar", "skyway", "1.0000005"),
        ("conversion", "freshmart", "skyway", "1E+1"),
        ("conversion", "skyway", "freshmart", "3.333333333"),
    ]
    async with gateway.service.engine.begin() as connection:
        await connection.execute(
            sa.insert(obligations),
            [
                {"kind": k, "debtor": d, "creditor": c, "amount": a, "created_at": T0}
                for k, d, c, a in owed
            ],
        )
    clock.now = T0 + timedelta(hours=2)
    assert (await close(gateway, END))["period"]["obligationCount"] == 4
    assert figures(await statement(gateway, 1, "skyway")) == {
        "payable": Decimal("4.333334"),
        "receivable": Decimal("11.000001"),
        "fees": 0,
        "net": Decimal("6.666667"),
        "count": 4,
        "pairs": {
            "brewbar": ("EVEN", Decimal(0)),
            "freshmart": ("RECEIVABLE", Decimal("6.666667")),
        },
    }
    found = await statement(gateway, 1, "brewbar")
    assert found is not None and found["bilateral"][0]["net"]["amount"] == "0.00"  # not -0
    # What the database wrote (SQL on PostgreSQL, Python on SQLite) is what Python adds up.
    statements, pairs = aggregate(owed, ["brewbar", "freshmart", "harbour", "skyway"])
    written = await settlement(gateway).statements(1)
    assert [(s.partner, s.gross_payable, s.gross_receivable, s.fees, s.net) for s in written] == [
        (s.partner, s.gross_payable, s.gross_receivable, s.fees, s.net) for s in statements
    ]
    stored = await rows(gateway, "SELECT debtor, creditor, amount FROM statement_pairs")
    assert sorted((d, c, Decimal(a)) for d, c, a in stored) == sorted(
        (p.debtor, p.creditor, p.amount) for p in pairs
    )
    assert await settlement(gateway).reconcile() == []


# 2. Who may do what


async def test_only_operators_close_and_partners_see_only_their_own_statements(
    gateway: Gateway, clock: Clock
):
    await movements(gateway)
    clock.now = T0 + timedelta(hours=2)
    skyway = await gateway.partner_token("skyway")
    refused = await close(gateway, END, token=skyway)
    assert codes(refused) == ["ACCESS_DENIED"] and refused["period"] is None
    assert (await gateway.gql(PERIODS))["data"]["settlementPeriods"] == []
    await close(gateway, END)
    periods = (await gateway.gql(PERIODS, token=skyway))["data"]["settlementPeriods"]
    assert [p["number"] for p in periods] == [1] and periods[0]["closedBy"] is None
    assert [s["partner"] for s in periods[0]["statements"]] == ["skyway"]
    every = (await gateway.gql(PERIODS))["data"]["settlementPeriods"][0]["statements"]
    assert [s["partner"] for s in every] == ["brewbar", "freshmart", "harbour", "skyway"]
    assert figures(await statement(gateway, 1, "skyway", token=skyway)) == SKYWAY_1
    assert await statement(gateway, 1, "brewbar", token=skyway) is None


async def test_members_can_neither_close_nor_read_settlement(sso: Gateway, brands: Brands):
    await movements(sso)
    CLOCK.now = T0 + timedelta(hours=2)
    await close(sso, END)
    bob = brands.token("skyway", "bob")
    refused = await close(sso, "2026-06-01T13:30:00Z", token=bob)
    assert codes(refused) == ["ACCESS_DENIED"] and refused["period"] is None
    assert (await sso.gql(PERIODS, token=bob))["data"]["settlementPeriods"] == []
    assert await statement(sso, 1, "skyway", token=bob) is None
    assert (await download(sso, "/settlement/1/skyway.csv", bob)).status_code == 404


# 3. CSV download


async def download(gateway: Gateway, path: str, token: str | None) -> Any:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return await gateway.client.get(path, headers=headers)


async def test_a_statement_downloads_as_csv_for_the_operator_and_its_partner(
    gateway: Gateway, clock: Clock
):
    await movements(gateway)
    clock.now = T0 + timedelta(hours=2)
    await close(gateway, END)
    path = (await statement(gateway, 1, "skyway") or {})["csvPath"]
    assert path == "/settlement/1/skyway.csv"
    response = await download(gateway, path, await gateway.operator_token())
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert (
        response.headers["content-disposition"] == 'attachment; filename="settlement-1-skyway.csv"'
    )
    lines = list(csv.DictReader(io.StringIO(response.text)))
    assert list(lines[0]) == [
        "period_id",
        "partner",
        "line",
        "counterparty",
        "kind",
        "amount",
        "currency",
        "obligation_id",
        "created_at",
        "transfer_id",
        "redemption_id",
    ]
    totals = {r["kind"]: Decimal(r["amount"]) for r in lines if r["line"] == "total"}
    assert totals == {
        "gross_payable": Decimal("4.72"),
        "gross_receivable": Decimal("0.684"),
        "fees": Decimal("1.132"),
        "net": Decimal("-5.168"),
    }
    bilateral = {r["counterparty"]: Decimal(r["amount"]) for r in lines if r["line"] == "bilateral"}
    assert bilateral == {"brewbar": Decimal("-4.036"), "operator": Decimal("-1.132")}
    owed = [r for r in lines if r["line"] == "obligation"]
    assert [(r["kind"], r["counterparty"], Decimal(r["amount"])) for r in owed] == [
        ("conversion", "brewbar", Decimal("-2.92")),
        ("reward", "brewbar", Decimal("-1.8")),
        ("conversion", "brewbar", Decimal("0.684")),
        ("issuance_fee", "operator", Decimal("-1.0")),
        ("conversion_fee", "operator", Decimal("-0.132")),
    ]
    assert sum(Decimal(r["amount"]) for r in owed) == totals["net"]
    assert owed[1]["redemption_id"] and owed[0]["transfer_id"]
    assert all(r["currency"] == "EUR" and r["period_id"] == "1" for r in lines)

    skyway = await download(gateway, path, await gateway.partner_token("skyway"))
    assert skyway.status_code == 200 and skyway.text == response.text
    brewbar = await gateway.partner_token("brewbar")
    assert (await download(gateway, path, brewbar)).status_code == 404
    assert (await download(gateway, "/settlement/1/brewbar.csv", brewbar)).status_code == 200
    assert (await download(gateway, "/settlement/2/brewbar.csv", brewbar)).status_code == 404
    assert (await download(gateway, "/settlement/x/brewbar.csv", brewbar)).status_code == 404
    unauthenticated = await download(gateway, path, None)
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert (await download(gateway, path, "not-a-token")).status_code == 401


# 4. The CLI and reconciliation


async def run_cli(monkeypatch: pytest.MonkeyPatch, url: str, *argv: str) -> int:
    monkeypatch.setenv("DATABASE_URL", url)
    code: int = await asyncio.to_thread(main, list(argv))
    return code


async def test_the_cli_closes_exports_and_reconciles(
    gateway: Gateway,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    await movements(gateway)
    capsys.readouterr()
    end = "--period-end=2026-06-01T13:00:00Z"
    assert await run_cli(monkeypatch, database_url, "settlement", "close", end) == 0
    out = capsys.readouterr().out
    assert "Closed period 1:" in out and "6 with the operator's fees" in out
    assert "-5.168000" in out and "3.996000" in out
    assert await run_cli(monkeypatch, database_url, "settlement", "close", end) == 0
    assert "was closed already" in capsys.readouterr().out
    earlier = "--period-end=2026-06-01T12:00:00Z"
    assert await run_cli(monkeypatch, database_url, "settlement", "close", earlier) == 1
    assert "PERIOD_NOT_AFTER_LAST" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # no time zone: argparse refuses it
        await run_cli(monkeypatch, database_url, "settlement", "close", "--period-end=2026-07-01")
    capsys.readouterr()

    output = tmp_path / "period-1.csv"
    assert (
        await run_cli(monkeypatch, database_url, "settlement", "export", "1", f"--output={output}")
        == 0
    )
    exported = list(csv.DictReader(output.open(encoding="utf-8")))
    assert {r["partner"] for r in exported} == {"brewbar", "freshmart", "harbour", "skyway"}
    net = {r["partner"]: Decimal(r["amount"]) for r in exported if r["kind"] == "net"}
    assert net == {
        "brewbar": Decimal("3.996"),
        "freshmart": 0,
        "harbour": 0,
        "skyway": Decimal("-5.168"),
    }
    only_skyway = ("settlement", "export", "1", "--partner=skyway")
    assert await run_cli(monkeypatch, database_url, *only_skyway) == 0
    only = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["partner"] for r in only} == {"skyway"} and len(only) == 4 + 2 + 5
    assert await run_cli(monkeypatch, database_url, "settlement", "export", "9") == 1
    assert "no settlement period 9" in capsys.readouterr().err
    assert await run_cli(monkeypatch, database_url, "settlement", "list") == 0
    assert "1  [the start, 2026-06-01T13:00:00+00:00)  6 obligation(s)" in capsys.readouterr().out

    assert await run_cli(monkeypatch, database_url, "reconcile") == 0
    assert capsys.readouterr().out.startswith("consistent")


async def test_reconcile_reports_a_missing_obligation_and_a_tampered_statement(
    gateway: Gateway,
    database_url: str,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    await movements(gateway)
    clock.now = T0 + timedelta(hours=2)
    await close(gateway, END)
    assert await run_cli(monkeypatch, database_url, "reconcile") == 0
    member = await enrol(gateway, customer="C-2")
    assert (await earn(gateway, member, 1000, "E-9"))["userErrors"] == []
    await convert(gateway, member, 300, "C-9")  # not yet in a period: may be deleted
    await execute(gateway, "DELETE FROM obligations WHERE statement_period IS NULL")
    clock.now = T0 + timedelta(hours=3)
    await close(gateway, "2026-06-01T14:30:00Z")
    capsys.readouterr()
    assert await run_cli(monkeypatch, database_url, "reconcile") == 1
    out = capsys.readouterr().out
    assert out.startswith("INCONSISTENT: 1 check(s) failed.")
    assert "a conversion has no obligation from its source partner" in out
    assert "'skyway', 'brewbar'" in out

    # Statements cannot be changed, unless someone disables the guard: reconcile sees it.
    postgres = database_url.startswith("postgresql")
    await execute(
        gateway,
        "ALTER TABLE statements DISABLE TRIGGER statements_immutable"
        if postgres
        else "DROP TRIGGER statements_no_update",
    )
    try:
        await execute(gateway, "UPDATE statements SET net = net + 1 WHERE partner = 'brewbar'")
    finally:
        if postgres:
            await execute(gateway, "ALTER TABLE statements ENABLE TRIGGER statements_immutable")
    assert await run_cli(monkeypatch, database_url, "reconcile") == 1
    out = capsys.readouterr().out
    assert "a statement differs from the sum of its obligations" in out
    assert "a partner's bilateral positions do not add up to its net" in out
    findings = await settlement(gateway).reconcile()
    assert len(findings) == 3, [(f.check, f.rows) for f in findings]
    # Leave the database as the fixture's audit expects it (statements are not audited).


# 5. Concurrency (PostgreSQL)


async def pg_gateway(pg_url: str, clock: Any) -> AsyncIterator[Gateway]:
    async for gateway in start_gateway(pg_url, clock):
        yield gateway


async def test_concurrent_closes_do_not_overlap(pg_url: str):
    clock = Clock()
    async for gateway in pg_gateway(pg_url, clock):
        member = await enrol(gateway)
        assert (await earn(gateway, member, 20000, "E-1"))["userErrors"] == []
        for i in range(12):
            clock.now = T0 + timedelta(minutes=5 * i)
            assert (await convert(gateway, member, 200, f"C-{i}"))["userErrors"] == []
        clock.now = T0 + timedelta(hours=2)
        for ends in (("12:10", "12:20"), ("12:40", "12:30"), ("12:50", "13:00")):
            results = await asyncio.gather(
                *(close(gateway, f"2026-06-01T{end}:00Z") for end in ends)
            )
            # Whichever went first: both close in order, or the earlier end is refused.
            refused = [codes(r) for r in results if r["period"] is None]
            assert refused in ([], [["PERIOD_NOT_AFTER_LAST"]])
        periods = (await gateway.gql(PERIODS))["data"]["settlementPeriods"]
        assert len(periods) >= 3
        spans = sorted((p["opensAt"] or "", p["closesAt"]) for p in periods)
        for (_, previous_end), (opens, _) in itertools.pairwise(spans):
            assert opens == previous_end  # contiguous, never overlapping
        assert await rows(
            gateway, "SELECT COUNT(*) FROM obligations WHERE statement_period IS NULL"
        ) == [(0,)]
        counted = await rows(gateway, "SELECT SUM(obligation_count) FROM settlement_periods")
        assert counted == await rows(gateway, "SELECT COUNT(*) FROM obligations")
        assert await settlement(gateway).reconcile() == []


async def keep_converting(gateway: Gateway, member: str, key: str, stop: asyncio.Event) -> int:
    """Convert 100 miles again and again until told to stop; how many were posted."""
    count = 0
    while not stop.is_set():
        result = await convert(gateway, member, 100, f"{key}-{count}")
        assert result["userErrors"] == []
        count += 1
    return count


async def test_postings_racing_a_close_land_in_exactly_one_period(pg_url: str):
    # The real clock: conversions keep posting while a close with the end "now" runs.
    async for gateway in pg_gateway(pg_url, utcnow):
        members = [await enrol(gateway, customer=f"C-{i}") for i in range(8)]
        for i, member in enumerate(members):
            assert (await earn(gateway, member, 50000, f"E-{i}"))["userErrors"] == []
        stop = asyncio.Event()
        workers = [
            asyncio.create_task(keep_converting(gateway, m, f"R-{i}", stop))
            for i, m in enumerate(members)
        ]
        await asyncio.sleep(0.3)
        closes = []
        for _ in range(3):
            end = utcnow().isoformat()
            closes.append((await close(gateway, end))["period"])
            await asyncio.sleep(0.2)
        stop.set()
        posted = sum(await asyncio.gather(*workers))
        await asyncio.sleep(0.01)
        final = (await close(gateway, utcnow().isoformat()))["period"]
        assert [p["number"] for p in [*closes, final]] == [1, 2, 3, 4]
        assert all(p["obligationCount"] > 0 for p in closes)
        found = await rows(
            gateway,
            "SELECT COUNT(*), COUNT(statement_period), COUNT(DISTINCT id) FROM obligations "
            "WHERE kind = 'conversion'",
        )
        assert found == [(posted, posted, posted)]
        # Each is in one period: the one its creation time says, or (committed after a
        # close whose end it was created before) the next one; never an earlier one.
        placed = await rows(
            gateway,
            "SELECT COUNT(*) FROM obligations o JOIN settlement_periods p "
            "ON p.id = o.statement_period WHERE o.created_at >= p.closes_at "
            "AND o.kind = 'conversion'",
        )
        assert placed == [(0,)]
        assert await settlement(gateway).reconcile() == []


async def test_an_obligation_committed_after_a_close_it_predates_goes_to_the_next(pg_url: str):
    clock = Clock()
    async for gateway in pg_gateway(pg_url, clock):
        await movements(gateway)
        clock.now = T0 + timedelta(hours=2)
        straggler = {
            "kind": "reward",
            "debtor": "freshmart",
            "creditor": "brewbar",
            "amount": "2.50",
            "created_at": T0,  # before the end, but its transaction commits after the close
        }
        async with gateway.service.engine.connect() as posting:
            transaction = await posting.begin()
            await posting.execute(sa.insert(obligations).values(**straggler))
            first = (await close(gateway, END))["period"]  # neither sees it nor waits for it
            await transaction.commit()
        assert first["obligationCount"] == 6
        findings = await settlement(gateway).reconcile()
        assert [f.check.split(" (")[0] for f in findings] == [
            "an obligation created before the last close is in no statement"
        ]
        second = (await close(gateway, "2026-06-01T13:30:00Z"))["period"]
        assert second["obligationCount"] == 1
        assert figures(await statement(gateway, 2, "brewbar"))["receivable"] == Decimal("2.5")
        assert figures(await statement(gateway, 1, "skyway")) == SKYWAY_1
        assert await settlement(gateway).reconcile() == []
