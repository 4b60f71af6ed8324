"""Typed reading of TOML tables: every error names the file, the partner and the field."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

DECIMAL_TEXT = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
MAX_POINTS = 1_000_000_000
SLUG = re.compile(r"^[a-z][a-z0-9-]{1,31}$")
"""A partner's slug: how files, the API and the ledger name it."""


class ConfigError(ValueError):
    """Configuration that cannot be loaded; the message names file, partner and field."""

    def __init__(self, file: Path | str, partner: str | None, field: str, problem: str) -> None:
        self.file = str(file)
        self.partner = partner
        self.field = field
        self.problem = problem
        where = f"partner '{partner}', " if partner else ""
        super().__init__(f"{self.file}: {where}field '{field}': {problem}")


class Reader:
    """Reads typed fields out of one TOML table, naming the field in every error."""

    def __init__(self, file: Path, partner: str | None, table: dict[str, Any], prefix: str = ""):
        self.file = file
        self.partner = partner
        self.table = table
        self.prefix = prefix

    def fail(self, field: str, problem: str) -> ConfigError:
        return ConfigError(self.file, self.partner, self.prefix + field, problem)

    def _get(self, field: str, required: bool) -> Any:
        if field not in self.table:
            if required:
                raise self.fail(field, "is required")
            return None
        return self.table[field]

    def text(
        self, field: str, pattern: re.Pattern[str] | None = None, required: bool = True
    ) -> str:
        value = self._get(field, required)
        if value is None:
            return ""
        if not isinstance(value, str) or not value.strip():
            raise self.fail(field, f"must be a non-empty string, got {value!r}")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.fail(field, f"{value!r} does not match {pattern.pattern}")
        return value

    def decimal(self, field: str, default: str | None = None, positive: bool = True) -> Decimal:
        value = self._get(field, default is None)
        if value is None:
            value = default
        if isinstance(value, float):
            raise self.fail(
                field, f'must be a decimal string such as "{value}", not the float {value}'
            )
        if not isinstance(value, str) or not DECIMAL_TEXT.fullmatch(value):
            raise self.fail(field, f'must be a decimal string such as "0.25", got {value!r}')
        number = Decimal(value)
        if positive and number <= 0:
            raise self.fail(field, f"must be greater than zero, got {value}")
        if number < 0:
            raise self.fail(field, f"must not be negative, got {value}")
        return number

    def integer(self, field: str, default: int | None = None, minimum: int = 0) -> int:
        value = self._get(field, default is None)
        if value is None:
            assert default is not None
            value = default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(field, f"must be a whole number, got {value!r}")
        if value < minimum or value > MAX_POINTS:
            raise self.fail(field, f"must be between {minimum} and {MAX_POINTS}, got {value}")
        return value

    def boolean(self, field: str, default: bool) -> bool:
        value = self._get(field, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(field, f"must be true or false, got {value!r}")
        return value

    def moment(self, field: str, required: bool) -> datetime | None:
        value = self._get(field, required)
        if value is None:
            return None
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise self.fail(field, "a date-time needs a UTC offset, e.g. 2026-01-01T00:00:00Z")
            return value.astimezone(UTC)
        if isinstance(value, date):
            return datetime.combine(value, time(), tzinfo=UTC)
        raise self.fail(field, f"must be a TOML date such as 2026-01-01, got {value!r}")

    def table_at(self, field: str) -> Reader:
        value = self._get(field, True)
        if not isinstance(value, dict):
            raise self.fail(field, "must be a table")
        return Reader(self.file, self.partner, value, f"{self.prefix}{field}.")

    def unknown_keys(self, allowed: set[str]) -> None:
        for key in self.table:
            if key not in allowed:
                raise self.fail(key, "is not a known setting (a typo?)")

    def strings(self, field: str) -> tuple[str, ...]:
        value = self._get(field, False)
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(field, f"must be a string or a list of strings, got {value!r}")
        return tuple(value)

    def optional_table(self, field: str) -> Reader | None:
        if field not in self.table:
            return None
        return self.table_at(field)
