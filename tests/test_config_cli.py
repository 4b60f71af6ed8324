"""`coalition config apply` (a dry run unless --apply) and `coalition config export`: the
TOML folder as the import and export format of the configuration in the database."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from gateway.api.cli import main
from partners.config.coalition import DEMO_DIRECTORY


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'config.db'}")
    return tmp_path


def edited(folder: Path, name: str, old: str, new: str) -> None:
    file = folder / f"{name}.toml"
    text = file.read_text()
    assert re.search(old, text, flags=re.MULTILINE), (old, text)
    file.write_text(re.sub(old, new, text, count=1, flags=re.MULTILINE))


def test_export_then_apply_changes_nothing(database: Path, capsys: pytest.CaptureFixture[str]):
    out = database / "exported"
    assert main(["config", "export", str(out)]) == 0
    assert sorted(f.name for f in out.glob("*.toml")) == [
        "brewbar.toml",
        "coalition.toml",
        "freshmart.toml",
        "harbour.toml",
        "skyway.toml",
    ]
    assert main(["config", "apply", str(out)]) == 0
    assert "nothing to change" in capsys.readouterr().out
    # The demo folder itself (comments, dates without times) is the same configuration.
    assert main(["config", "apply", str(DEMO_DIRECTORY)]) == 0
    assert "nothing to change" in capsys.readouterr().out


def test_a_dry_run_shows_the_difference_and_apply_writes_it(
    database: Path, capsys: pytest.CaptureFixture[str]
):
    folder = database / "edited"
    shutil.copytree(DEMO_DIRECTORY, folder)
    assert main(["config", "apply", str(folder), "--apply"]) == 0  # the first import
    assert "Applied as change 1" in capsys.readouterr().out
    edited(folder, "skyway", r'^point_value = "0.012"', 'point_value = "0.0125"')
    edited(folder, "freshmart", r'^rate = "0.11"', 'rate = "0.12"')
    assert main(["config", "apply", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "skyway: point_value: '0.012' -> '0.0125'" in out
    assert "freshmart -> brewbar: rate 0.12" in out and "Dry run: 3 difference(s)" in out
    assert main(["config", "apply", str(folder)]) == 0  # still a dry run: nothing written
    assert "Dry run" in capsys.readouterr().out
    assert main(["config", "apply", str(folder), "--apply"]) == 0
    assert "Applied as change 2" in capsys.readouterr().out
    assert main(["config", "apply", str(folder)]) == 0  # applied: the same folder is a no-op
    assert "nothing to change" in capsys.readouterr().out

    exported = database / "exported"
    assert main(["config", "export", str(exported)]) == 0
    skyway = (exported / "skyway.toml").read_text()
    assert 'point_value = "0.0125"' in skyway
    freshmart = (exported / "freshmart.toml").read_text()
    # The old rate stays in the history, ended when the new one started.
    assert 'rate = "0.11"' in freshmart and 'rate = "0.12"' in freshmart
    assert "effective_until" in freshmart


def test_refused_configurations_change_nothing(database: Path, capsys: pytest.CaptureFixture[str]):
    folder = database / "edited"
    shutil.copytree(DEMO_DIRECTORY, folder)
    railco = 'slug = "railco"\nname = "RailCo"\npoint_value = "0.01"\n'
    railco += '[currency]\ncode = "RAIL"\nname = "points"\n[earn]\npoints_per_unit = "1"\n'
    (folder / "railco.toml").write_text(railco)
    assert main(["config", "apply", str(folder), "--apply"]) == 0  # the first import
    capsys.readouterr()
    # BrewBar -> SkyWay at 5 miles per star: a round trip returns more miles than it took.
    edited(folder, "brewbar", r'^rate = "3"', 'rate = "5"')
    assert main(["config", "apply", str(folder), "--apply"]) == 1
    error = capsys.readouterr().err
    assert "RATES_ALLOW_ARBITRAGE" in error and "brewbar" in error and "skyway" in error
    edited(folder, "brewbar", r'^rate = "5"', 'rate = "3"')
    (folder / "railco.toml").unlink()
    assert main(["config", "apply", str(folder)]) == 1
    assert "a partner cannot be removed" in capsys.readouterr().err
    (folder / "railco.toml").write_text(railco)
    edited(folder, "skyway", r'^point_value = "0.012"', "point_value = 0.012")
    assert main(["config", "apply", str(folder)]) == 2
    assert "skyway.toml" in capsys.readouterr().err
    shutil.copy(DEMO_DIRECTORY / "skyway.toml", folder)
    assert main(["config", "apply", str(folder)]) == 0
    assert "nothing to change" in capsys.readouterr().out


def test_export_refuses_a_folder_with_other_files(
    database: Path, capsys: pytest.CaptureFixture[str]
):
    folder = database / "busy"
    folder.mkdir()
    (folder / "railco.toml").write_text("")
    assert main(["config", "export", str(folder)]) == 2
    assert "railco.toml" in capsys.readouterr().err
