"""Configuration from the environment, with defaults that run the embedded demo as is."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from gateway.kernel.sealing import Sealer, parse_master_key
from partners.config.coalition import DEMO_DIRECTORY

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/coalition.db"
TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}
# Seals secrets in development when no master key is configured. Public: it protects
# nothing, and production refuses to start without a key of its own.
DEVELOPMENT_MASTER_KEY = "ZGV2ZWxvcG1lbnQtb25seS1tYXN0ZXIta2V5LTMyYiE="


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


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    value = environ.get(name)
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {value!r}") from None
    if not 0 <= seconds < float("inf"):
        raise SettingsError(f"{name} must be 0 or more seconds, got {value!r}")
    return seconds


def _secret(environ: Mapping[str, str], name: str) -> str:
    """``name`` from the environment, or the content of the file ``<name>_FILE`` names (a
    mounted secret); not both."""
    value, file = environ.get(name, "").strip(), environ.get(f"{name}_FILE", "").strip()
    if value and file:
        raise SettingsError(f"set {name} or {name}_FILE, not both")
    if not file:
        return value
    try:
        return Path(file).read_text().strip()
    except OSError as error:
        raise SettingsError(f"{name}_FILE: cannot read {file}: {error.strerror}") from None


def _origins(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated exact origins (``https://shop.example``, a port allowed): no path, no
    wildcard, nothing but a scheme and a host."""
    origins: list[str] = []
    for entry in environ.get(name, "").split(","):
        origin = entry.strip()
        if not origin:
            continue
        try:
            parts = urlsplit(origin)
            port = parts.port
        except ValueError:
            raise SettingsError(f"{name}: {origin!r} is not an origin") from None
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.username is not None
            or parts.password is not None
            or parts.path
            or parts.query
            or parts.fragment
            or origin.endswith(("?", "#"))
            or "*" in origin
        ):
            raise SettingsError(
                f"{name}: {origin!r} is not an exact origin such as https://shop.example"
            )
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        origins.append(f"{parts.scheme}://{host}" + (f":{port}" if port is not None else ""))
    return tuple(dict.fromkeys(origins))


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
    db_pool_timeout: float = 5.0  # seconds a request waits for a connection, then SERVICE_BUSY
    db_statement_timeout: float = 30.0  # seconds; PostgreSQL cancels a longer statement; 0: none
    workers: int = 1
    max_query_depth: int = 12
    max_query_tokens: int = 2000
    max_query_cost: int = 10_000  # see gateway/graphql/cost.py
    http_header_timeout: float = 10.0  # seconds to receive a request's headers; 0: unbounded
    http_body_timeout: float = 30.0  # seconds to receive a request's body; 0: unbounded
    max_body_bytes: int = 4 * 1024 * 1024  # a bulk earn of 10,000 purchases fits
    max_import_bytes: int = 200 * 1024 * 1024  # a file uploaded to POST /imports/earns
    migrate_on_start: bool = True
    graphiql: bool = True  # from the environment: on unless COALITION_ENV=production
    hold_sweep_seconds: int = 30  # how often expired holds are released; 0: never here
    remote_retry_seconds: int = 30  # how often pending remote operations are retried; 0: never
    jobs: bool = True  # run the job runner (consumers, sweeps) inside each server process
    events_poll_seconds: float = 0.2  # how often an idle consumer looks for new events
    webhook_poll_seconds: float = 1.0  # how often due webhooks are sent; 0: not here
    # seconds between a process's checks for a configuration change (0: never)
    config_poll: float = 2.0
    environment: str = "development"  # or "production": secure cookies, no dev providers
    public_url: str = ""  # how browsers and clients reach the gateway; default from host/port
    session_secret: str = ""  # signs cookies; required in production
    session_hours: int = 12
    token_lifetime: int = 600  # seconds, for the gateway's client-credentials tokens
    oidc_credentials: tuple[tuple[str, str], ...] = ()  # COALITION_OIDC_* from the environment
    log_format: str = ""  # json or console; default: json in production, console otherwise
    request_log: bool = True  # a line per request (and uvicorn's own access log off)
    metrics: str = ""  # who reads /metrics: open, token or off (see _check_observability)
    metrics_token: str = ""  # the bearer token /metrics asks for when set
    cors_origins: tuple[str, ...] = ()  # partner web apps' origins allowed to call from browsers
    shutdown_timeout: float = 20.0  # seconds requests in flight get to finish on shutdown
    # Seals signing keys and webhook secrets in the database (gateway.kernel.sealing);
    # required in production. Previous keys still open values until `secrets rewrap`.
    master_key: str = ""
    previous_master_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.environment not in ("development", "production"):
            raise SettingsError(
                f"COALITION_ENV must be development or production, got {self.environment!r}"
            )
        if self.production and len(self.session_secret) < 32:
            raise SettingsError(
                "COALITION_SESSION_SECRET (32+ characters) is required in production"
            )
        if not self.events_poll_seconds > 0:
            raise SettingsError("COALITION_EVENTS_POLL_SECONDS must be more than 0")
        if not self.public_url:
            object.__setattr__(self, "public_url", f"http://{self.host}:{self.port}")
        object.__setattr__(self, "public_url", self.public_url.rstrip("/"))
        self._check_observability()
        self._check_master_keys()

    def _check_master_keys(self) -> None:
        if not self.master_key:
            if self.production:
                raise SettingsError(
                    "COALITION_MASTER_KEY or COALITION_MASTER_KEY_FILE is required in "
                    "production (`coalition secrets new-master-key` prints one)"
                )
            object.__setattr__(self, "master_key", DEVELOPMENT_MASTER_KEY)
        if self.production and DEVELOPMENT_MASTER_KEY in (
            self.master_key,
            *self.previous_master_keys,
        ):
            raise SettingsError("the published development master key cannot be used in production")
        for name, value in (
            ("COALITION_MASTER_KEY", self.master_key),
            *(("COALITION_PREVIOUS_MASTER_KEYS", key) for key in self.previous_master_keys),
        ):
            try:
                parse_master_key(value)
            except ValueError as error:
                raise SettingsError(f"{name}: {error}") from None

    def sealer(self) -> Sealer:
        """Seals under the master key; opens under it and the previous ones."""
        return Sealer(
            parse_master_key(self.master_key),
            [parse_master_key(key) for key in self.previous_master_keys],
        )

    def _check_observability(self) -> None:
        """Logs: json or console. /metrics: ``token`` when a token is set (it is then always
        asked for), else ``open`` in development and ``off`` (404) in production unless
        COALITION_METRICS says otherwise."""
        if not self.log_format:
            object.__setattr__(self, "log_format", "json" if self.production else "console")
        if self.log_format not in ("json", "console"):
            raise SettingsError(
                f"COALITION_LOG_FORMAT must be json or console, got {self.log_format!r}"
            )
        if self.metrics_token and len(self.metrics_token) < 16:
            raise SettingsError("COALITION_METRICS_TOKEN must have 16 characters or more")
        metrics = self.metrics or ("open" if not self.production else "off")
        if self.metrics_token:
            if self.metrics not in ("", "token"):
                raise SettingsError(
                    f"COALITION_METRICS_TOKEN is set: COALITION_METRICS must be token or unset, "
                    f"got {self.metrics!r}"
                )
            metrics = "token"
        if metrics not in ("open", "token", "off"):
            raise SettingsError(f"COALITION_METRICS must be open, token or off, got {metrics!r}")
        if metrics == "token" and not self.metrics_token:
            raise SettingsError("COALITION_METRICS=token needs COALITION_METRICS_TOKEN")
        object.__setattr__(self, "metrics", metrics)

    @property
    def production(self) -> bool:
        return self.environment == "production"

    def oidc_credential(self, name: str) -> str | None:
        """An entry such as COALITION_OIDC_SKYWAY_CLIENT_ID from the environment."""
        return dict(self.oidc_credentials).get(name)

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
            db_pool_timeout=_seconds(environ, "DB_POOL_TIMEOUT", 5.0),
            db_statement_timeout=_seconds(environ, "DB_STATEMENT_TIMEOUT", 30.0),
            workers=_number(environ, "WEB_CONCURRENCY", 1),
            max_query_depth=_number(environ, "GRAPHQL_MAX_DEPTH", 12),
            max_query_tokens=_number(environ, "GRAPHQL_MAX_TOKENS", 2000),
            max_query_cost=_number(environ, "GRAPHQL_MAX_COST", 10_000),
            http_header_timeout=_seconds(environ, "HTTP_HEADER_TIMEOUT", 10.0),
            http_body_timeout=_seconds(environ, "HTTP_BODY_TIMEOUT", 30.0),
            migrate_on_start=_flag(environ, "COALITION_MIGRATE_ON_START", True),
            graphiql=_flag(
                environ,
                "COALITION_GRAPHIQL",
                environ.get("COALITION_ENV", "development").strip().lower() != "production",
            ),
            max_import_bytes=_number(environ, "COALITION_MAX_IMPORT_BYTES", 200 * 1024 * 1024),
            hold_sweep_seconds=_number(environ, "COALITION_HOLD_SWEEP_SECONDS", 30),
            remote_retry_seconds=_number(environ, "COALITION_REMOTE_RETRY_SECONDS", 30),
            jobs=_flag(environ, "COALITION_JOBS", True),
            events_poll_seconds=_seconds(environ, "COALITION_EVENTS_POLL_SECONDS", 0.2),
            webhook_poll_seconds=_seconds(environ, "COALITION_WEBHOOK_POLL_SECONDS", 1.0),
            config_poll=_seconds(environ, "COALITION_CONFIG_POLL_SECONDS", 2.0),
            environment=environ.get("COALITION_ENV", "development").strip().lower(),
            public_url=environ.get("COALITION_PUBLIC_URL", ""),
            session_secret=environ.get("COALITION_SESSION_SECRET", ""),
            session_hours=_number(environ, "COALITION_SESSION_HOURS", 12),
            token_lifetime=_number(environ, "COALITION_TOKEN_LIFETIME", 600),
            oidc_credentials=tuple(
                sorted((k, v) for k, v in environ.items() if k.startswith("COALITION_OIDC_"))
            ),
            log_format=environ.get("COALITION_LOG_FORMAT", "").strip().lower(),
            request_log=_flag(environ, "COALITION_REQUEST_LOG", True),
            metrics=environ.get("COALITION_METRICS", "").strip().lower(),
            metrics_token=environ.get("COALITION_METRICS_TOKEN", "").strip(),
            cors_origins=_origins(environ, "COALITION_CORS_ORIGINS"),
            shutdown_timeout=_seconds(environ, "COALITION_SHUTDOWN_TIMEOUT", 20.0),
            master_key=_secret(environ, "COALITION_MASTER_KEY"),
            previous_master_keys=tuple(
                key
                for key in _secret(environ, "COALITION_PREVIOUS_MASTER_KEYS")
                .replace(",", "\n")
                .split()
                if key
            ),
        )
