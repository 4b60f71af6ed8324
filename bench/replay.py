"""The gateway's posting as a template: statements recorded from the gateway's own code for one
earn, with the values that depend on the earn marked, replayed for other earns over asyncpg.

bench/trace.py records, for one earn sent through the in-process gateway, every statement of
the transaction that claimed the earn's idempotency key: the SQL text exactly as SQLAlchemy's
asyncpg dialect sent it, its parameters as passed to asyncpg, and the rows it returned.
``build_template`` turns each parameter into a slot:

- the earn's member id, idempotency key, points and minus the points: filled from the earn;
- an integer an earlier statement of the transaction returned (the transfer id, the wallet's
  account id and balance): taken from that statement's answer at replay;
- a date-time within a minute of the trace: the moment of the replay (others as recorded);
- a 64-character hex string (the request hash): a hash of the replayed earn;
- a text containing the member id or the key (a JSON document, say): the same text with them
  replaced;
- lists element by element; anything else is sent as recorded (the kind, the scope, the
  partner, the issuance account's id, ...).

So when the gateway's posting changes (fewer statements, a data-modifying CTE, an outbox
insert), the template follows it without a change here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

HASH = re.compile(r"[0-9a-f]{64}")
NOW_WITHIN = timedelta(seconds=60)  # a recorded moment this close to the trace's is "now"


@dataclass(frozen=True)
class Recorded:
    """One statement as the gateway sent it: its text, parameters and the rows it returned."""

    sql: str
    parameters: Any  # a tuple, or a list of tuples for an executemany
    executemany: bool
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True)
class Values:
    """What one earn's statements are filled from."""

    member: str
    key: str
    points: int
    at: datetime  # the posting's moment (the trace's: when it was recorded)

    def hash(self) -> str:
        return hashlib.sha256(f"{self.member}|{self.points}|{self.key}".encode()).hexdigest()


@dataclass(frozen=True)
class Slot:
    """How a parameter's value is found at replay: ``kind`` is one of const, member, key,
    points, minus_points, result (``at`` = step, row, column), now, hash, text, list."""

    kind: str
    value: Any = None
    at: tuple[int, int, int] = (0, 0, 0)
    parts: tuple[Slot, ...] = ()

    def fill(self, values: Values, answers: Sequence[Sequence[tuple[Any, ...]]]) -> Any:
        kind = self.kind
        if kind == "const":
            return self.value
        if kind == "member":
            return values.member
        if kind == "key":
            return values.key
        if kind == "points":
            return values.points
        if kind == "minus_points":
            return -values.points
        if kind == "result":
            step, row, column = self.at
            return answers[step][row][column]
        if kind == "now":
            return values.at
        if kind == "hash":
            return values.hash()
        if kind == "text":
            return "".join(str(part.fill(values, answers)) for part in self.parts)
        if kind == "list":
            return [part.fill(values, answers) for part in self.parts]
        raise ValueError(f"unknown slot kind {kind!r}")


@dataclass(frozen=True)
class Step:
    sql: str
    executemany: bool
    slots: tuple[Slot, ...]  # one per parameter; for an executemany, one list slot per row

    def arguments(self, values: Values, answers: Sequence[Sequence[tuple[Any, ...]]]) -> list[Any]:
        return [slot.fill(values, answers) for slot in self.slots]


@dataclass(frozen=True)
class Template:
    partner: str
    steps: tuple[Step, ...]
    isolation: str | None = None  # the BEGIN's (asyncpg's names); None: a plain BEGIN


def _text_slot(text: str, values: Values) -> Slot | None:
    """The text with the member id and key marked, or None when it contains neither."""
    names = {values.member: "member", values.key: "key"}
    pattern = re.compile("|".join(re.escape(found) for found in sorted(names, key=len)[::-1]))
    pieces: list[Slot] = []
    position = 0
    for match in pattern.finditer(text):
        if match.start() > position:
            pieces.append(Slot("const", text[position : match.start()]))
        pieces.append(Slot(names[match.group(0)]))
        position = match.end()
    if not pieces:
        return None
    if position < len(text):
        pieces.append(Slot("const", text[position:]))
    return Slot("text", parts=tuple(pieces))


def _slot(value: Any, values: Values, returned: dict[int, tuple[int, int, int]]) -> Slot:
    if isinstance(value, list | tuple):
        return Slot("list", parts=tuple(_slot(item, values, returned) for item in value))
    if value is None or isinstance(value, bool):
        return Slot("const", value)
    if isinstance(value, int):
        if value == values.points:
            return Slot("points")
        if value == -values.points:
            return Slot("minus_points")
        if value in returned:
            return Slot("result", at=returned[value])
        return Slot("const", value)
    if isinstance(value, datetime):
        # The moment of the posting (created_at, occurred_at) is "now"; another moment (the
        # start of a period, an expiry date) is sent as recorded.
        traced = values.at if value.tzinfo is not None else values.at.replace(tzinfo=None)
        return Slot("now") if abs(value - traced) <= NOW_WITHIN else Slot("const", value)
    if isinstance(value, str):
        if value == values.member:
            return Slot("member")
        if value == values.key:
            return Slot("key")
        if HASH.fullmatch(value):
            return Slot("hash")
        return _text_slot(value, values) or Slot("const", value)
    return Slot("const", value)


def build_template(
    partner: str, recorded: Sequence[Recorded], values: Values, isolation: str | None = None
) -> Template:
    """The recorded transaction as a template; ``values``: the traced earn's. Raises
    ValueError when the earn's member, key or points appear in no statement, or when an
    answer held the points (their slots would be ambiguous)."""
    returned: dict[int, tuple[int, int, int]] = {}  # an integer an answer held: where first
    steps = []
    for index, statement in enumerate(recorded):
        if statement.executemany:
            slots = tuple(_slot(list(row), values, returned) for row in statement.parameters)
        else:
            slots = tuple(_slot(value, values, returned) for value in statement.parameters)
        steps.append(Step(statement.sql, statement.executemany, slots))
        for row_index, row in enumerate(statement.rows):
            for column, value in enumerate(row):
                if isinstance(value, int) and not isinstance(value, bool):
                    returned.setdefault(value, (index, row_index, column))
    if values.points in returned or -values.points in returned:
        raise ValueError(
            "a statement returned the traced earn's points (a new wallet's balance?): "
            "trace an earn for a member whose wallet holds points already"
        )
    used = {slot.kind for step in steps for slot in _flatten(step.slots)}
    missing = {"member", "key", "points"} - used
    if missing:
        raise ValueError(f"the recorded posting never sends the earn's {sorted(missing)}")
    return Template(partner, tuple(steps), isolation)


def _flatten(slots: Sequence[Slot]) -> list[Slot]:
    found: list[Slot] = []
    for slot in slots:
        found.append(slot)
        found.extend(_flatten(slot.parts))
    return found


def now() -> datetime:
    return datetime.now(UTC)


def describe(template: Template) -> list[str]:
    """One line per statement: what direct sends, shortened."""
    lines = []
    for step in template.steps:
        sql = " ".join(step.sql.split())
        shown = sql if len(sql) <= 110 else sql[:107] + "..."
        how = "executemany" if step.executemany else "fetch"
        lines.append(f"  {how} {len(step.slots)} parameter(s): {shown}")
    return lines
