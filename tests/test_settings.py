from __future__ import annotations

from pathlib import Path

import pytest

from gateway.api.settings import (
    DEFAULT_DATABASE_URL,
    DEVELOPMENT_MASTER_KEY,
    Settings,
    SettingsError,
    normalise_database_url,
)
from gateway.kernel.sealing import new_master_key


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


def test_limits_that_protect_the_server() -> None:
    defaults = Settings.from_env({})
    assert defaults.max_query_cost == 10_000
    assert (defaults.db_pool_timeout, defaults.db_statement_timeout) == (5.0, 30.0)
    assert (defaults.http_header_timeout, defaults.http_body_timeout) == (10.0, 30.0)
    settings = Settings.from_env(
        {
            "GRAPHQL_MAX_COST": "500",
            "DB_POOL_TIMEOUT": "0.5",
            "DB_STATEMENT_TIMEOUT": "0",
            "HTTP_HEADER_TIMEOUT": "2.5",
            "HTTP_BODY_TIMEOUT": "60",
        }
    )
    assert settings.max_query_cost == 500 and settings.db_pool_timeout == 0.5
    assert settings.db_statement_timeout == 0
    assert (settings.http_header_timeout, settings.http_body_timeout) == (2.5, 60)
    for bad in ("soon", "-1", "inf", "nan"):
        with pytest.raises(SettingsError, match="DB_POOL_TIMEOUT"):
            Settings.from_env({"DB_POOL_TIMEOUT": bad})


PRODUCTION = {
    "COALITION_ENV": "production",
    "COALITION_SESSION_SECRET": "s" * 32,
    "COALITION_MASTER_KEY": new_master_key(),
}


def test_graphiql_is_off_in_production_unless_enabled() -> None:
    assert Settings.from_env({}).graphiql
    production = PRODUCTION
    assert not Settings.from_env(production).graphiql
    assert Settings.from_env({**production, "COALITION_GRAPHIQL": "on"}).graphiql
    assert not Settings.from_env({"COALITION_GRAPHIQL": "off"}).graphiql
    with pytest.raises(SettingsError, match="COALITION_GRAPHIQL"):
        Settings.from_env({"COALITION_GRAPHIQL": "sometimes"})


def test_observability_defaults() -> None:
    demo = Settings.from_env({})
    assert (demo.log_format, demo.metrics, demo.request_log) == ("console", "open", True)
    assert (demo.cors_origins, demo.shutdown_timeout) == ((), 20.0)
    production = Settings.from_env(PRODUCTION)
    assert (production.log_format, production.metrics) == ("json", "off")
    opened = Settings.from_env({**PRODUCTION, "COALITION_METRICS": "open"})
    assert opened.metrics == "open"
    tokened = Settings.from_env({**PRODUCTION, "COALITION_METRICS_TOKEN": "t" * 20})
    assert (tokened.metrics, tokened.metrics_token) == ("token", "t" * 20)
    settings = Settings.from_env(
        {
            "COALITION_CORS_ORIGINS": " https://Shop.Example , http://127.0.0.1:5173,"
            "https://shop.example",
            "COALITION_SHUTDOWN_TIMEOUT": "5",
            "COALITION_LOG_FORMAT": "JSON",
        }
    )
    assert settings.cors_origins == ("https://shop.example", "http://127.0.0.1:5173")
    assert (settings.shutdown_timeout, settings.log_format) == (5.0, "json")


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"COALITION_LOG_FORMAT": "xml"}, "COALITION_LOG_FORMAT"),
        ({"COALITION_METRICS": "maybe"}, "COALITION_METRICS"),
        ({"COALITION_METRICS": "token"}, "COALITION_METRICS_TOKEN"),
        ({"COALITION_METRICS_TOKEN": "short"}, "COALITION_METRICS_TOKEN"),
        ({"COALITION_METRICS_TOKEN": "t" * 20, "COALITION_METRICS": "open"}, "COALITION_METRICS"),
        ({"COALITION_CORS_ORIGINS": "*"}, "COALITION_CORS_ORIGINS"),
        ({"COALITION_CORS_ORIGINS": "https://shop.example/"}, "COALITION_CORS_ORIGINS"),
        ({"COALITION_CORS_ORIGINS": "https://shop.example/app"}, "COALITION_CORS_ORIGINS"),
        ({"COALITION_CORS_ORIGINS": "ftp://shop.example"}, "COALITION_CORS_ORIGINS"),
        ({"COALITION_CORS_ORIGINS": "shop.example"}, "COALITION_CORS_ORIGINS"),
        ({"COALITION_CORS_ORIGINS": "https://*.shop.example"}, "COALITION_CORS_ORIGINS"),
        ({"COALITION_CORS_ORIGINS": "https://u:p@shop.example"}, "COALITION_CORS_ORIGINS"),
        ({"COALITION_CORS_ORIGINS": "https://shop.example:99999"}, "COALITION_CORS_ORIGINS"),
        ({"COALITION_REQUEST_LOG": "sometimes"}, "COALITION_REQUEST_LOG"),
        ({"COALITION_SHUTDOWN_TIMEOUT": "-1"}, "COALITION_SHUTDOWN_TIMEOUT"),
        ({"COALITION_SHUTDOWN_TIMEOUT": "soon"}, "COALITION_SHUTDOWN_TIMEOUT"),
    ],
)
def test_bad_observability_values_are_named(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(environ)


def test_production_needs_a_master_key_of_its_own() -> None:
    without = {k: v for k, v in PRODUCTION.items() if k != "COALITION_MASTER_KEY"}
    with pytest.raises(SettingsError, match="COALITION_MASTER_KEY or COALITION_MASTER_KEY_FILE"):
        Settings.from_env(without)
    for published in (
        {"COALITION_MASTER_KEY": DEVELOPMENT_MASTER_KEY},
        {"COALITION_PREVIOUS_MASTER_KEYS": DEVELOPMENT_MASTER_KEY},
    ):
        with pytest.raises(SettingsError, match="development master key"):
            Settings.from_env({**PRODUCTION, **published})
    # Not base64 of 32 bytes, though 44 characters long: refused, not read as something else.
    with pytest.raises(SettingsError, match="32 random bytes"):
        Settings.from_env(
            {**PRODUCTION, "COALITION_MASTER_KEY": "correct horse battery staple!!" + "x" * 14}
        )
