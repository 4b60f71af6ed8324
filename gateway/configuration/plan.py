"""What applying a configuration changes: new document versions, new conversion rules, rules
that end or are withdrawn, with a line of the difference each. The past never changes: a rule
that has taken effect keeps its terms (conversions made under it keep its rate), so new terms
for it start now, as a new rule."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from gateway.configuration.documents import (
    COALITION,
    Document,
    State,
    StoredRule,
    normal,
    same_terms,
    without_rules,
)
from partners.config.coalition import ConfigError, ConfigFiles, build_coalition
from partners.config.conversions import ConversionRule

SINCE_ALWAYS = datetime(1970, 1, 1, tzinfo=UTC)  # when a first import's documents take effect


@dataclass
class Plan:
    documents: list[Document] = field(default_factory=list)
    rules: list[ConversionRule] = field(default_factory=list)
    ends: dict[int, datetime | None] = field(default_factory=dict)  # rule id -> its new end
    withdrawals: set[int] = field(default_factory=set)
    lines: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.documents or self.rules or self.ends or self.withdrawals)

    def after(self, state: State) -> State:
        """``state`` with this plan applied (ids of new rows left out)."""
        rules = []
        for stored in state.rules:
            if stored.id in self.withdrawals:
                stored = replace(stored, withdrawn_by=-1)
            elif stored.id in self.ends:
                until = self.ends[stored.id]
                stored = replace(stored, rule=replace(stored.rule, effective_until=until))
            rules.append(stored)
        rules.extend(StoredRule(rule) for rule in self.rules)
        return replace(state, documents=state.documents + tuple(self.documents), rules=tuple(rules))


def _flat(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return f"[{len(value)} entries]"
    return repr(value) if isinstance(value, str) else str(value)


def table_lines(name: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    before, after = _flat(old), _flat(new)
    lines = []
    for key in sorted(before.keys() | after.keys()):
        if key not in after:
            lines.append(f"{name}: {key} removed (was {_shown(before[key])})")
        elif key not in before:
            lines.append(f"{name}: {key} = {_shown(after[key])} (new)")
        elif before[key] != after[key]:
            lines.append(f"{name}: {key}: {_shown(before[key])} -> {_shown(after[key])}")
    return lines


def rule_line(rule: ConversionRule) -> str:
    until = f" until {rule.effective_until:%Y-%m-%d %H:%M}" if rule.effective_until else ""
    state = "" if rule.enabled else ", disabled"
    return (
        f"{rule.source} -> {rule.target}: rate {rule.rate}, fee {rule.fee_percent}% + "
        f"{rule.fee_fixed}, {rule.min_points}..{rule.max_points} points{state}, "
        f"from {rule.effective_from:%Y-%m-%d %H:%M}{until}"
    )


def plan(
    state: State, files: ConfigFiles, now: datetime, effective_from: datetime | None = None
) -> Plan:
    """What makes the database hold ``files`` from ``effective_from`` (default ``now``).
    Raises ``ConfigError`` for files that do not load, a partner left out, a pool changed at
    run time, or a rule written into the past."""
    coalition = build_coalition(files)  # every check of the files themselves
    start = effective_from or now
    result = Plan()
    current = state.in_force(start) if not state.empty else {}
    first = state.empty  # the first import: history may be written as it is
    for name in sorted(current.keys() - {COALITION} - files.partners.keys()):
        raise ConfigError(
            files.file(name),
            name,
            "-",
            "a partner cannot be removed: its pool holds points "
            "and history (disable its conversion rules instead)",
        )
    wanted = {COALITION: files.coalition, **files.partners}
    for name, table in wanted.items():
        new = normal(without_rules(table))
        old = current.get(name)
        if old is not None and normal(old.table) == new:
            continue
        if old is not None and not first and old.table.get("pool") != new.get("pool"):
            raise ConfigError(
                files.file(name),
                name,
                "pool",
                "a partner's pool cannot change while the "
                "gateway runs: its points would be stranded",
            )
        if old is None and not first and new.get("pool", {}).get("remote"):
            raise ConfigError(
                files.file(name),
                name,
                "pool",
                "a partner with a remote pool is added with "
                "a restart of every process (its adapter is built at start-up)",
            )
        result.documents.append(Document(name, SINCE_ALWAYS if first else start, new))
        result.lines += table_lines(name, old.table if old else {}, new) or [f"{name}: changed"]
    wanted_rules = [rule for partner in coalition.partners.values() for rule in partner.conversions]
    _plan_rules(state, wanted_rules, now, first, result)
    return result


def _key(rule: ConversionRule) -> tuple[str, str, datetime]:
    return rule.source, rule.target, rule.effective_from


def _plan_rules(
    state: State, wanted: list[ConversionRule], now: datetime, first: bool, result: Plan
) -> None:
    stored = {_key(s.rule): s for s in state.rules if s.live}
    seen = set()
    for rule in wanted:
        old = stored.get(_key(rule))
        if old is not None:
            seen.add(_key(rule))
            if old.rule == rule:
                continue
        if first or rule.effective_from >= now:
            if old is not None:  # it has not started: it may still be replaced
                assert old.id is not None
                result.withdrawals.add(old.id)
                result.lines.append(f"withdrawn: {rule_line(old.rule)}")
            result.rules.append(rule)
            result.lines.append(f"new: {rule_line(rule)}")
            continue
        if old is not None and same_terms(old.rule, rule):
            _end(old, rule.effective_until, now, result)
            continue
        if rule.effective_until is not None and rule.effective_until <= now:
            problem = "cannot change" if old is not None else "cannot be added"
            raise _past(rule, f"a rule that has already ended {problem}")
        # In force now, as the files say: from now on, these are its terms.
        current = next(
            (
                s
                for s in stored.values()
                if (s.rule.source, s.rule.target) == (rule.source, rule.target)
                and s.rule.in_force_at(now)
            ),
            None,
        )
        if current is not None:
            seen.add(_key(current.rule))
            if same_terms(replace(current.rule, effective_from=rule.effective_from), rule):
                _end(current, rule.effective_until, now, result)
                continue
            _end(current, now, now, result)
        started = replace(rule, effective_from=now)
        result.rules.append(started)
        written = f"{rule.effective_from:%Y-%m-%d}"
        result.lines.append(f"new (from now, not {written}): {rule_line(started)}")
    for key, old in stored.items():
        if key in seen:
            continue
        if old.rule.effective_from > now:
            assert old.id is not None
            result.withdrawals.add(old.id)
            result.lines.append(f"withdrawn: {rule_line(old.rule)}")
        elif old.rule.effective_until is None or old.rule.effective_until > now:
            _end(old, now, now, result)


def _end(old: StoredRule, until: datetime | None, now: datetime, result: Plan) -> None:
    if until is not None and until < now:
        until = now
    if until == old.rule.effective_until:
        return
    assert old.id is not None
    result.ends[old.id] = until
    when = f"ends {until:%Y-%m-%d %H:%M}" if until is not None else "no longer ends"
    result.lines.append(f"{when}: {rule_line(old.rule)}")


def _past(rule: ConversionRule, problem: str) -> ConfigError:
    return ConfigError(
        f"configuration/{rule.source}.toml",
        rule.source,
        f"conversions (to {rule.target})",
        f"{problem}: the past does not change (rule from {rule.effective_from:%Y-%m-%d})",
    )
