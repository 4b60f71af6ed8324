"""Coalition-wide tiers: ``[[tiers]]`` in coalition.toml (stub to fill)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .reader import Reader


@dataclass(frozen=True)
class Tiers:
    """The coalition's tiers. TODO: fields."""


def read_tiers(reader: Reader, raw: Any, partners: Mapping[str, Any]) -> Tiers:
    return Tiers()
