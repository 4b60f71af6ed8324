from __future__ import annotations

from pathlib import Path

import pytest

from gateway.settings import DEFAULT_DATABASE_URL, Settings, SettingsError, normalise_database_url


def test_defaults_run_the_embedded_demo() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == DEFAULT_DATABASE_URL and settings.is_sqlite
    assert settings.demo_data and settings.migrate_on_start
    assert (settings.config_dir / "skyway.toml").is_file()


def test_environment_overrides() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://u@db/loyalty",
            "COALITION_DEMO_DATA": "false",
            "PORT": "9000",
            "COALITION_CONFIG_DIR": "/etc/coalition",
        }
    )
    assert settings.database_url == "postgresql+asyncpg://u@db/loyalty"
    assert not settings.demo_data and settings.port == 9000
    assert settings.config_dir == Path("/etc/coalition")


@pytest.mark.parametrize("environ", [{"PORT": "eighty"}, {"COALITION_DEMO_DATA": "maybe"}])
def test_bad_values_are_named(environ: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=next(iter(environ))):
        Settings.from_env(environ)


def test_url_spellings() -> None:
    assert normalise_database_url("postgres://x/y") == "postgresql+asyncpg://x/y"
    assert normalise_database_url("sqlite:///a.db") == "sqlite+aiosqlite:///a.db"
    assert normalise_database_url("postgresql+asyncpg://x/y") == "postgresql+asyncpg://x/y"
