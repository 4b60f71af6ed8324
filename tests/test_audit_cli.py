"""The audit entries of the CLI: `coalition client create|rotate|disable`, `coalition keys
rotate`, `coalition secrets rewrap` and `coalition config apply` name the operator at the terminal
(`operator:cli:<user>`), against a temporary SQLite database."""

from __future__ import annotations

import asyncio
import getpass
import shutil
from pathlib import Path

import pytest

from gateway.api.cli import main
from gateway.audit import store
from gateway.audit.consumer import AuditEvents
from gateway.audit.entries import Entry
from gateway.audit.store import Filters
from gateway.jobs.runner import JobRunner
from gateway.kernel.database import create_engine
from gateway.kernel.sealing import master_id, new_master_key, parse_master_key
from gateway.kernel.unit_of_work import UnitOfWork
from partners.config.coalition import DEMO_DIRECTORY
from tests.test_config_cli import edited


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = tmp_path / "audit.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    return f"sqlite+aiosqlite:///{path}"


def entries(database: str) -> list[Entry]:
    """Oldest first, once the audit consumer applied the events."""

    async def run() -> list[Entry]:
        engine = create_engine(database)
        try:
            await JobRunner(UnitOfWork(engine), [AuditEvents()]).settle()
            async with engine.connect() as connection:
                found = await store.query(connection, Filters(), None, 100)
            return [stored.entry for stored in reversed(found)]
        finally:
            await engine.dispose()

    return asyncio.run(run())


OPERATOR = f"operator:cli:{getpass.getuser()}"


def test_client_and_key_changes_name_the_operator_at_the_terminal(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["client", "create", "--partner", "brewbar", "--client-id", "brewbar-till"]) == 0
    assert main(["client", "rotate", "brewbar-till"]) == 0
    assert main(["client", "disable", "brewbar-till"]) == 0
    assert main(["client", "create", "--operator", "--client-id", "ops"]) == 0
    assert main(["keys", "rotate"]) == 0
    assert main(["client", "list"]) == 0  # reading records nothing
    out = capsys.readouterr().out

    found = entries(database)
    assert [(e.action, e.target_kind, e.target_id) for e in found] == [
        ("client.create", "client", "brewbar-till"),
        ("client.rotate", "client", "brewbar-till"),
        ("client.disable", "client", "brewbar-till"),
        ("client.create", "client", "ops"),
        ("keys.rotate", "signing_key", found[-1].target_id),
    ]
    assert found[-1].target_id and found[-1].target_id in out
    assert {(e.actor.kind, e.actor.id, e.outcome) for e in found} == {("operator", OPERATOR, "ok")}
    assert [e.partner for e in found[:4]] == ["brewbar", None, "brewbar", None]
    assert found[0].data == {"operator": False} and found[3].data == {"operator": True}
    assert all("client_secret" not in str(e.data) for e in found)


def test_a_configuration_change_from_the_cli_names_the_operator(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "edited"
    shutil.copytree(DEMO_DIRECTORY, folder)
    assert main(["config", "apply", str(folder), "--apply"]) == 0  # change 1
    edited(folder, "skyway", r'^point_value = "0.012"', 'point_value = "0.0125"')
    assert main(["config", "apply", str(folder), "--apply"]) == 0
    assert "Applied as change 2" in capsys.readouterr().out
    first, entry = entries(database)
    assert first.target_id == "1"
    assert (entry.action, entry.target_kind, entry.target_id) == (
        "configuration.changed",
        "configuration_change",
        "2",
    )
    assert (entry.actor.kind, entry.actor.id) == ("operator", OPERATOR)
    assert entry.source == "event" and entry.request_id is None


def test_moving_the_secrets_to_a_new_master_key_is_recorded(
    database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = new_master_key()
    monkeypatch.setenv("COALITION_MASTER_KEY", key)
    assert main(["keys", "rotate"]) == 0
    assert main(["secrets", "rewrap"]) == 0
    assert main(["secrets", "status"]) == 0  # reading records nothing
    rotated, rewrapped = entries(database)
    assert rotated.action == "keys.rotate"
    assert (rewrapped.action, rewrapped.target_kind, rewrapped.target_id) == (
        "secrets.rewrap",
        "master_key",
        master_id(parse_master_key(key)),
    )
    assert rewrapped.outcome == "ok" and rewrapped.data == {"rewrapped": 0, "sealed": 0}
    assert key not in str(rewrapped)
