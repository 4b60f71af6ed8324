"""The `coalition` command: configuration check, migrate, schema export, audit, demo data."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.database import create_engine
from gateway.demo import load_demo
from gateway.service import LedgerService
from partners.config import DEMO_DIRECTORY, load_coalition


def test_check_config_prints_the_partners(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config"]) == 0
    assert "skyway: SkyWay Airlines, miles (SKM) worth 0.012 EUR" in capsys.readouterr().out


def test_bad_configuration_exits_2_naming_file_partner_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for file in DEMO_DIRECTORY.glob("*.toml"):
        (tmp_path / file.name).write_text(file.read_text())
    broken = (tmp_path / "brewbar.toml").read_text().replace('rate = "3"', "rate = 3.0")
    (tmp_path / "brewbar.toml").write_text(broken)
    assert main(["check-config", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "brewbar.toml" in error and "partner 'brewbar'" in error
    assert "conversions[0].rate" in error


def test_migrate_audit_and_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    assert main(["migrate"]) == 0
    assert main(["audit"]) == 0
    assert "The ledger is sound." in capsys.readouterr().out
    assert main(["export-schema", str(tmp_path / "schema.graphql")]) == 0
    assert "type Mutation" in (tmp_path / "schema.graphql").read_text()


def test_demo_data_loads_twice_without_change(tmp_path: Path) -> None:
    async def run() -> dict[str, int]:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}")
        from gateway.database import migrate

        await migrate(engine)
        service = LedgerService(engine, load_coalition(DEMO_DIRECTORY))
        await service.start()
        await load_demo(service)
        await load_demo(service)
        from gateway.records import MemberRef

        member = await service.resolve_member(MemberRef(partner="skyway", customer_id="SKY-1001"))
        wallets = await service.wallets([member])
        await engine.dispose()
        return {w.pool: w.balance for w in wallets[member]}

    assert asyncio.run(run()) == {"skyway": 840}
