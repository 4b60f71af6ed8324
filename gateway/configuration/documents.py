"""The configuration as the database keeps it, in memory: document versions and conversion
rules, and the coalition they configure at a given moment."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import tomli_w

from partners.config.coalition import Coalition, ConfigFiles, build_coalition
from partners.config.conversions import ConversionRule

COALITION = "coalition"  # the name of coalition.toml's document
FOLDER = Path("configuration")  # how errors name the documents kept in the database


def to_toml(table: dict[str, Any]) -> str:
    return tomli_w.dumps(table)


def from_toml(text: str) -> dict[str, Any]:
    return tomllib.loads(text)


def normal(table: dict[str, Any]) -> dict[str, Any]:
    """``table`` as it reads back from the database (dates, nested tables, key order aside)."""
    return from_toml(to_toml(table))


def without_rules(table: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in table.items() if key != "conversions"}


def rule_table(rule: ConversionRule) -> dict[str, Any]:
    """A rule as a ``[[conversions]]`` table of its source partner's file."""
    table: dict[str, Any] = {
        "to": rule.target,
        "rate": str(rule.rate),
        "fee_percent": str(rule.fee_percent),
        "fee_fixed": rule.fee_fixed,
        "min_points": rule.min_points,
        "max_points": rule.max_points,
        "enabled": rule.enabled,
        "effective_from": rule.effective_from,
    }
    if rule.effective_until is not None:
        table["effective_until"] = rule.effective_until
    return table


def same_terms(one: ConversionRule, other: ConversionRule) -> bool:
    """The same rule apart from when it ends."""
    return replace(one, effective_until=None) == replace(other, effective_until=None)


@dataclass(frozen=True)
class Document:
    name: str  # COALITION or a partner's slug
    effective_from: datetime
    table: dict[str, Any]
    id: int | None = None
    change_id: int | None = None


@dataclass(frozen=True)
class StoredRule:
    rule: ConversionRule
    id: int | None = None
    change_id: int | None = None
    ended_by: int | None = None
    withdrawn_by: int | None = None

    @property
    def live(self) -> bool:
        return self.withdrawn_by is None


@dataclass(frozen=True)
class State:
    """Everything the database holds of the configuration; ``version`` is the id of the
    last change (0: none yet, a new database)."""

    documents: tuple[Document, ...] = ()
    rules: tuple[StoredRule, ...] = ()
    version: int = 0
    changes: dict[int, tuple[datetime, str]] = field(default_factory=dict)  # id -> (at, by)

    @property
    def empty(self) -> bool:
        return not self.documents

    def in_force(self, at: datetime) -> dict[str, Document]:
        """Each document's version in force at ``at``: the latest to have taken effect."""
        found: dict[str, Document] = {}
        for document in sorted(self.documents, key=lambda d: (d.effective_from, d.id or 0)):
            if document.effective_from <= at:
                found[document.name] = document
        return found

    def next_version_after(self, at: datetime) -> datetime | None:
        """When the next scheduled document version takes effect, if any."""
        later = [d.effective_from for d in self.documents if d.effective_from > at]
        return min(later, default=None)

    def moments_from(self, at: datetime) -> list[datetime]:
        """``at`` and every later moment a document version takes effect."""
        return [at, *sorted({d.effective_from for d in self.documents if d.effective_from > at})]

    def live_rules(self) -> list[ConversionRule]:
        return [stored.rule for stored in self.rules if stored.live]

    def files(self, at: datetime) -> ConfigFiles:
        """The configuration in force at ``at`` as the files of a folder would hold it: the
        rules of partners not configured yet at ``at`` are left out."""
        documents = self.in_force(at)
        partners = {
            name: dict(document.table) for name, document in documents.items() if name != COALITION
        }
        for rule in sorted(self.live_rules(), key=lambda r: (r.target, r.effective_from)):
            if rule.source in partners and rule.target in partners:
                partners[rule.source].setdefault("conversions", []).append(rule_table(rule))
        top = documents[COALITION].table if COALITION in documents else {}
        return ConfigFiles(dict(top), partners, FOLDER)

    def coalition(self, at: datetime) -> Coalition:
        return build_coalition(self.files(at))
