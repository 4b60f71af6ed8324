"""Changes operators make through the API, as edits of the files they change: the result is
applied like a folder of files, so the same checks hold whichever way a change comes."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from gateway.configuration.documents import rule_table
from gateway.kernel.errors import DomainError, ErrorCode, shown
from partners.config.coalition import ConfigFiles
from partners.config.conversions import ConversionRule
from partners.config.earning import EARNING_KEYS

Table = dict[str, Any]


def _merged(table: Table, changes: Table) -> Table:
    """``table`` with ``changes`` merged in, nested tables key by key; None removes a key."""
    result = dict(table)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merged(result[key], value)
        else:
            result[key] = value
    return result


def _copy(files: ConfigFiles) -> ConfigFiles:
    return ConfigFiles(copy.deepcopy(files.coalition), copy.deepcopy(files.partners), files.folder)


def partner_changed(files: ConfigFiles, slug: str, changes: Table, create: bool) -> ConfigFiles:
    result = _copy(files)
    if create:
        if slug in result.partners:
            raise DomainError(
                ErrorCode.INVALID_INPUT, f"Partner {shown(slug)} exists already.", ("slug",)
            )
        result.partners[slug] = _merged({"slug": slug}, changes)
        return result
    if slug not in result.partners:
        raise DomainError(ErrorCode.UNKNOWN_PARTNER, f"No partner {shown(slug)}.", ("partner",))
    result.partners[slug] = _merged(result.partners[slug], changes)
    return result


def earning_set(files: ConfigFiles, slug: str, earning: Table) -> ConfigFiles:
    """The partner's earning rules replaced by ``earning`` (the keys of EARNING_KEYS but
    promotions, which stay as they are)."""
    if slug not in files.partners:
        raise DomainError(ErrorCode.UNKNOWN_PARTNER, f"No partner {shown(slug)}.", ("partner",))
    result = _copy(files)
    replaced = set(EARNING_KEYS) - {"promotions"}
    table = {k: v for k, v in result.partners[slug].items() if k not in replaced}
    result.partners[slug] = {**table, **earning}
    return result


def _rules_of(files: ConfigFiles, source: str) -> list[Table]:
    if source not in files.partners:
        raise DomainError(
            ErrorCode.UNKNOWN_PARTNER, f"No partner {shown(source)}.", ("from_partner",)
        )
    rules: list[Table] = files.partners[source].setdefault("conversions", [])
    return rules


def rule_in_force(files: ConfigFiles, source: str, target: str, at: datetime) -> Table | None:
    """The terms of the rule from ``source`` to ``target`` in force at ``at``, if any."""
    for table in files.partners.get(source, {}).get("conversions", []):
        until = table.get("effective_until")
        if (
            table["to"] == target
            and table["effective_from"] <= at
            and (until is None or at < until)
        ):
            return dict(table)
    return None


def rule_set(files: ConfigFiles, rule: ConversionRule) -> ConfigFiles:
    """``rule`` added for its pair of partners: the rule in force when it starts ends then,
    rules that would start within it are withdrawn, and without an end of its own it runs
    until the next later rule starts."""
    result = _copy(files)
    if rule.target not in result.partners:
        raise DomainError(
            ErrorCode.UNKNOWN_PARTNER, f"No partner {shown(rule.target)}.", ("to_partner",)
        )
    rules = _rules_of(result, rule.source)
    start, until = rule.effective_from, rule.effective_until
    pair = [t for t in rules if t["to"] == rule.target]
    if until is None:
        later = [t["effective_from"] for t in pair if t["effective_from"] > start]
        until = min(later, default=None)
    kept = [t for t in rules if t["to"] != rule.target]
    for table in pair:
        begins, ends = table["effective_from"], table.get("effective_until")
        if begins < start:
            if ends is None or ends > start:
                table["effective_until"] = start
            kept.append(table)
        elif begins > start and until is not None and begins >= until:
            kept.append(table)
    new = rule_table(rule)
    if until is not None:
        new["effective_until"] = until
    kept.append(new)
    result.partners[rule.source]["conversions"] = kept
    return result


def rule_ended(files: ConfigFiles, rule: ConversionRule, at: datetime) -> ConfigFiles:
    """``rule`` ends at ``at``; one that would not have started by then is withdrawn."""
    result = _copy(files)
    rules = _rules_of(result, rule.source)
    kept = []
    for table in rules:
        if table["to"] == rule.target and table["effective_from"] == rule.effective_from:
            if rule.effective_from >= at:
                continue
            table["effective_until"] = at
        kept.append(table)
    result.partners[rule.source]["conversions"] = kept
    return result
