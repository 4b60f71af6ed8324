"""Configuration from the environment, with defaults that run the embedded demo as is."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from partners.config import DEMO_DIRECTORY

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/coalition.db"
TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    pass


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    value = environ.get(name)
    if value is None:
        return default
    if value.strip().lower() in TRUE:
        return True
    if value.strip().lower() in FALSE:
        return False
    raise SettingsError(f"{name} must be true or false, got {value!r}")


def _number(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {value!r}") from None


def normalise_database_url(url: str) -> str:
    """Accept the usual ``postgresql://`` spelling and use the asyncpg driver for it."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    config_dir: Path = DEMO_DIRECTORY
    demo_data: bool = True
    host: str = "127.0.0.1"
    port: int = 8000
    db_pool_size: int = 20
    workers: int = 1
    max_query_depth: int = 12
    max_query_tokens: int = 2000
    max_body_bytes: int = 256 * 1024
    migrate_on_start: bool = True
    graphiql: bool = True

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        return cls(
            database_url=normalise_database_url(environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)),
            config_dir=Path(environ.get("COALITION_CONFIG_DIR", str(DEMO_DIRECTORY))),
            demo_data=_flag(environ, "COALITION_DEMO_DATA", True),
            host=environ.get("HOST", "127.0.0.1"),
            port=_number(environ, "PORT", 8000),
            db_pool_size=_number(environ, "DB_POOL_SIZE", 20),
            workers=_number(environ, "WEB_CONCURRENCY", 1),
            max_query_depth=_number(environ, "GRAPHQL_MAX_DEPTH", 12),
            max_query_tokens=_number(environ, "GRAPHQL_MAX_TOKENS", 2000),
            migrate_on_start=_flag(environ, "COALITION_MIGRATE_ON_START", True),
            graphiql=_flag(environ, "COALITION_GRAPHIQL", True),
        )
