"""Challenges and badges: ``[[challenges]]`` in coalition.toml (stub to fill)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .reader import Reader


@dataclass(frozen=True)
class Challenge:
    """One challenge. TODO: fields."""


def read_challenges(reader: Reader, raw: Any, partners: Mapping[str, Any]) -> tuple[Challenge, ...]:
    return ()
