"""The `coalition` command: configuration check, migrate, schema export, audit, demo data."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from gateway.api.cli import main
from gateway.api.cli_serve import check_exposure, is_loopback
from gateway.api.pools import remote_pools
from gateway.api.settings import SettingsError
from gateway.development.demo import DEMO_REMOTE_MEMBERS, load_demo
from gateway.earning.observer import observe_programme
from gateway.kernel.database import create_engine
from gateway.ledger.service import LedgerService
from gateway.remote.operations import connect_pools
from partners.config.coalition import DEMO_DIRECTORY, load_coalition


def test_check_config_prints_the_partners(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config"]) == 0
    assert "skyway: SkyWay Airlines, miles (SKM) worth 0.012 EUR" in capsys.readouterr().out


def test_check_config_tells_rules_in_force_from_rules_starting_later(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for file in DEMO_DIRECTORY.glob("*.toml"):
        (tmp_path / file.name).write_text(file.read_text())
    brewbar = (tmp_path / "brewbar.toml").read_text()
    later = re.sub(r"effective_from = \S+", "effective_from = 2999-01-01", brewbar, count=1)
    (tmp_path / "brewbar.toml").write_text(later)
    assert main(["check-config", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 conversion rule(s): 0 in force now, 1 starting later" in out


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
        from gateway.kernel.database import migrate

        await migrate(engine)
        coalition = load_coalition(DEMO_DIRECTORY)
        # The demo enrols a hotel guest: the hotel's development pool is asked about them.
        pools, _ = remote_pools(coalition, development_members=DEMO_REMOTE_MEMBERS)
        service = observe_programme(LedgerService(engine, coalition))
        remote = connect_pools(service, pools)
        await service.start()
        await load_demo(service)
        await load_demo(service)
        await remote.aclose()
        from gateway.ledger.records import MemberRef

        member = await service.resolve_member(MemberRef(partner="skyway", customer_id="SKY-1001"))
        wallets = await service.wallets([member])
        await engine.dispose()
        return {w.pool: w.balance for w in wallets[member]}

    assert asyncio.run(run()) == {"skyway": 840}


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("gateway.example", False),
        ("", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_demo_ways_in_on_a_network_need_an_explicit_development_environment() -> None:
    development = ["skyway", "coalition"]
    with pytest.raises(SettingsError, match="not loopback") as refused:
        check_exposure("0.0.0.0", development, False, {})
    assert "skyway, coalition" in str(refused.value) and "COALITION_ENV" in str(refused.value)
    with pytest.raises(SettingsError, match="demo OAuth clients"):
        check_exposure("::", [], True, {})
    with pytest.raises(SettingsError):  # production is not a development choice
        check_exposure("10.0.0.1", development, True, {"COALITION_ENV": "production"})
    warning = check_exposure("0.0.0.0", development, True, {"COALITION_ENV": " Development "})
    assert warning is not None and warning.startswith("warning:")
    assert "skyway" in warning and "demo OAuth clients" in warning
    assert check_exposure("127.0.0.1", development, True, {}) is None
    assert check_exposure("0.0.0.0", [], False, {}) is None  # real providers, no demo clients


class _Uvicorn:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        import uvicorn

        self.calls: list[dict[str, object]] = []
        monkeypatch.setattr(uvicorn, "run", lambda app, **options: self.calls.append(options))
        monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'serve.db'}")
        monkeypatch.setenv("COALITION_PUBLIC_URL", "http://gateway.example")
        for name in ("COALITION_ENV", "HOST", "COALITION_DEMO_DATA", "COALITION_CONFIG_DIR"):
            monkeypatch.delenv(name, raising=False)


def test_serve_refuses_the_demo_on_a_network_unless_told_development(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    uvicorn = _Uvicorn(monkeypatch, tmp_path)
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    error = capsys.readouterr().err
    assert "error: refusing to serve the development sign-in provider" in error
    assert "'0.0.0.0'" in error and "COALITION_ENV=development" in error
    assert uvicorn.calls == []

    assert main(["serve", "--host", "127.0.0.1"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert uvicorn.calls[-1]["host"] == "127.0.0.1"

    monkeypatch.setenv("COALITION_ENV", "development")
    assert main(["serve", "--host", "0.0.0.0"]) == 0
    warned = capsys.readouterr().err
    assert "warning: serving the development sign-in provider" in warned and "'0.0.0.0'" in warned
    assert uvicorn.calls[-1]["host"] == "0.0.0.0"


def test_serve_on_a_network_with_real_providers_and_no_demo_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    uvicorn = _Uvicorn(monkeypatch, tmp_path)
    config = tmp_path / "config"
    config.mkdir()
    for file in DEMO_DIRECTORY.glob("*.toml"):
        text = file.read_text().replace(
            "development = true", f'issuer = "https://login.{file.stem}.example"', 1
        )
        # A remote pool's development partner is for the demo only: name a real one.
        text = text.replace("development = true", 'base_url = "https://points.example"')
        (config / file.name).write_text(text)
    monkeypatch.setenv("COALITION_CONFIG_DIR", str(config))
    monkeypatch.setenv("COALITION_REMOTE_HARBOUR_TOKEN", "token")
    for name in ("coalition", *load_coalition(config).partners):
        prefix = "COALITION_OIDC_" + name.upper().replace("-", "_")
        monkeypatch.setenv(prefix + "_CLIENT_ID", "gateway")
        monkeypatch.setenv(prefix + "_CLIENT_SECRET", "secret")
    monkeypatch.setenv("COALITION_DEMO_DATA", "false")
    assert main(["serve", "--host", "0.0.0.0"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert uvicorn.calls[-1]["host"] == "0.0.0.0"
