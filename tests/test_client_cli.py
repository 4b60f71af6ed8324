"""`coalition client ...` and `coalition keys ...` against a temporary SQLite database."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from gateway.api.cli import main
from gateway.auth import clients
from gateway.kernel.database import create_engine

SECRET = re.compile(r"^client_secret: (\S+)$", re.MULTILINE)
CLIENT_ID = re.compile(r"^client_id: +(\S+)$", re.MULTILINE)


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = tmp_path / "clients.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    return f"sqlite+aiosqlite:///{path}"


def _authenticate(database: str, client_id: str, secret: str) -> clients.ClientRecord | None:
    async def run() -> clients.ClientRecord | None:
        engine = create_engine(database)
        try:
            return await clients.authenticate(engine, client_id, secret)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _created(out: str) -> tuple[str, str]:
    client_id, secret = CLIENT_ID.search(out), SECRET.search(out)
    assert client_id and secret, out
    assert "will not be shown again" in out
    return client_id.group(1), secret.group(1)


def test_create_prints_a_working_secret_once(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["client", "create", "--partner", "skyway", "--scopes", "points:earn"]) == 0
    client_id, secret = _created(capsys.readouterr().out)
    assert client_id.startswith("skyway-")
    record = _authenticate(database, client_id, secret)
    assert record is not None
    assert record.partner == "skyway" and record.scopes == {"points:earn"}

    assert main(["client", "create", "--operator"]) == 0
    operator_id, operator_secret = _created(capsys.readouterr().out)
    operator = _authenticate(database, operator_id, operator_secret)
    assert operator is not None and operator.operator and operator.scopes == {"operator"}


def test_rotate_disable_and_list(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["client", "create", "--partner", "brewbar", "--client-id", "brewbar-till"]) == 0
    _, old = _created(capsys.readouterr().out)

    assert main(["client", "rotate", "brewbar-till"]) == 0
    client_id, new = _created(capsys.readouterr().out)
    assert client_id == "brewbar-till" and new != old
    assert _authenticate(database, "brewbar-till", old) is None
    assert _authenticate(database, "brewbar-till", new) is not None

    assert main(["client", "list"]) == 0
    listed = capsys.readouterr().out
    assert "brewbar-till  partner brewbar  active" in listed
    assert new not in listed and "$" not in listed  # neither secrets nor hashes

    assert main(["client", "disable", "brewbar-till"]) == 0
    assert "stay valid until they expire" in capsys.readouterr().out
    assert _authenticate(database, "brewbar-till", new) is None
    assert main(["client", "list"]) == 0
    assert "brewbar-till  partner brewbar  disabled" in capsys.readouterr().out


def test_keys_rotate_and_list(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "list"]) == 0
    assert "No signing keys yet" in capsys.readouterr().out
    assert main(["keys", "rotate"]) == 0
    first = re.search(r"New signing key (\S+);", capsys.readouterr().out)
    assert first
    assert main(["keys", "rotate"]) == 0
    second = re.search(r"New signing key (\S+);", capsys.readouterr().out)
    assert second and second.group(1) != first.group(1)
    assert main(["keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert re.search(rf"^{re.escape(second.group(1))} .* current$", listed, re.MULTILINE)
    assert re.search(rf"^{re.escape(first.group(1))} .* published until", listed, re.MULTILINE)
    assert '"d"' not in listed  # never a private key


@pytest.mark.parametrize(
    "argv, message",
    [
        (["client", "create", "--partner", "nope"], "unknown partner 'nope'"),
        (["client", "create", "--partner", "skyway", "--scopes", "bogus"], "unknown partner scope"),
        (["client", "create", "--operator", "--scopes", "operator"], "--scopes is for partner"),
        (["client", "rotate", "nobody"], "unknown client 'nobody'"),
        (["client", "disable", "nobody"], "unknown client 'nobody'"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    database: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert "client_secret" not in captured.out


def test_a_taken_client_id_exits_2(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["client", "create", "--operator", "--client-id", "ops"]) == 0
    assert main(["client", "create", "--operator", "--client-id", "ops"]) == 2
    assert "client id 'ops' is taken" in capsys.readouterr().err


def test_argument_errors_exit_2(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["client", "create"])  # neither --partner nor --operator
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        main(["client", "create", "--partner", "skyway", "--operator"])
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_an_unreachable_database_is_a_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres:hunter2@127.0.0.1:1/none")
    assert main(["client", "list"]) == 1
    error = capsys.readouterr().err
    assert "cannot use the database" in error and "hunter2" not in error
