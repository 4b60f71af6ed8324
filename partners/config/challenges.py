"""Challenges and badges: ``[[challenges]]`` in coalition.toml.

A challenge is met by earning within one calendar period (a UTC week, month or year):

- ``partners_in_period``: earn at ``target`` different partners;
- ``visits_at_partner``: earn ``target`` times at ``partner``;
- ``points_in_period``: earn ``target`` points at ``partner``.

Meeting it awards a badge (a name) and, optionally, ``bonus_points`` at ``bonus_partner``,
once per member and period. Operators configure coalition-wide challenges here or through
GraphQL; partners define their own through GraphQL. The rules below are shared by both, so
a challenge is checked the same way whichever way it arrives.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from partners.config.reader import MAX_POINTS, Reader

CHALLENGE_SLUG = re.compile(r"^[a-z][a-z0-9-]{1,31}$")
MAX_NAME = 120
MAX_BADGE = 80
MAX_DESCRIPTION = 1000
MAX_COUNT = 10_000  # visits or partners in one period
CHALLENGE_KEYS = frozenset(
    {
        "slug",
        "name",
        "description",
        "kind",
        "period",
        "target",
        "badge",
        "partner",
        "bonus_points",
        "bonus_partner",
        "valid_from",
        "valid_until",
        "active",
    }
)


class ChallengeKind(Enum):
    PARTNERS_IN_PERIOD = "partners_in_period"  # earn at N different partners
    VISITS_AT_PARTNER = "visits_at_partner"  # N earns at one partner
    POINTS_IN_PERIOD = "points_in_period"  # N points earned at one partner

    @property
    def at_one_partner(self) -> bool:
        return self is not ChallengeKind.PARTNERS_IN_PERIOD


class Period(Enum):
    """A calendar period in UTC; weeks start on Monday (ISO 8601)."""

    WEEK = "week"
    MONTH = "month"
    YEAR = "year"

    def start(self, moment: datetime) -> datetime:
        """The start of the period that holds ``moment``."""
        moment = moment.astimezone(UTC)
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        if self is Period.WEEK:
            return day - timedelta(days=day.weekday())
        if self is Period.MONTH:
            return day.replace(day=1)
        return day.replace(month=1, day=1)

    def end(self, start: datetime) -> datetime:
        """The end (exclusive) of the period that starts at ``start``."""
        if self is Period.WEEK:
            return start + timedelta(days=7)
        if self is Period.MONTH:
            if start.month == 12:
                return start.replace(year=start.year + 1, month=1)
            return start.replace(month=start.month + 1)
        return start.replace(year=start.year + 1)

    def starts(self, since: datetime, until: datetime) -> Iterator[datetime]:
        """The starts of every period that holds a moment in ``[since, until]``."""
        start = self.start(since)
        while start <= until:
            yield start
            start = self.end(start)


@dataclass(frozen=True)
class Challenge:
    slug: str  # unique in the coalition, configured or not
    name: str
    kind: ChallengeKind
    period: Period
    target: int  # partners, visits or points, by ``kind``
    badge: str  # the badge's name
    partner: str | None = None  # where earns count (one-partner kinds); None: anywhere
    bonus_points: int = 0
    bonus_partner: str | None = None  # whose points the bonus is; set when bonus_points > 0
    description: str | None = None
    owner: str | None = None  # the partner that offers it; None: the coalition's
    valid_from: datetime | None = None  # earns before this do not count
    valid_until: datetime | None = None  # nor earns from this on
    active: bool = True
    configured: bool = False  # from coalition.toml (changed there, not through the API)

    def window(self, period_start: datetime) -> tuple[datetime, datetime] | None:
        """The part of the period starting at ``period_start`` in which earns count; None
        when the challenge does not run at all then."""
        start, end = period_start, self.period.end(period_start)
        if self.valid_from is not None:
            start = max(start, self.valid_from)
        if self.valid_until is not None:
            end = min(end, self.valid_until)
        return (start, end) if start < end else None

    def runs_at(self, moment: datetime) -> bool:
        if not self.active:
            return False
        if self.valid_from is not None and moment < self.valid_from:
            return False
        return self.valid_until is None or moment < self.valid_until


class ChallengeProblem(ValueError):
    """A challenge that cannot be: ``field`` names the setting, ``kind`` the sort of fault
    (``invalid``, ``unknown_partner`` or ``remote``) so that each caller can report it in
    its own terms (a ConfigError, a GraphQL user error)."""

    def __init__(self, field: str, problem: str, kind: str = "invalid") -> None:
        super().__init__(problem)
        self.field = field
        self.problem = problem
        self.kind = kind


def _text(value: str | None, field: str, limit: int, required: bool) -> None:
    if value is None:
        if required:
            raise ChallengeProblem(field, "is required")
        return
    if not value.strip():
        raise ChallengeProblem(field, "must not be blank")
    if len(value) > limit:
        raise ChallengeProblem(field, f"must be at most {limit} characters")
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in value):
        raise ChallengeProblem(field, "must not contain control characters")


def check_challenge(challenge: Challenge, partners: Mapping[str, Any]) -> None:
    """Raise ``ChallengeProblem`` for the first setting that is wrong. ``partners``: the
    coalition's partners by slug (each with ``pool.remote``)."""
    if not CHALLENGE_SLUG.fullmatch(challenge.slug):
        raise ChallengeProblem(
            "slug",
            f"{challenge.slug[:40]!r} must be 2 to 32 lower-case letters, digits or '-', "
            "starting with a letter",
        )
    _text(challenge.name, "name", MAX_NAME, True)
    _text(challenge.badge, "badge", MAX_BADGE, True)
    _text(challenge.description, "description", MAX_DESCRIPTION, False)
    kind = challenge.kind
    if kind.at_one_partner:
        if challenge.partner is None:
            raise ChallengeProblem("partner", f"is required for a {kind.value} challenge")
        if challenge.partner not in partners:
            raise ChallengeProblem(
                "partner", f"names unknown partner {challenge.partner[:40]!r}", "unknown_partner"
            )
    elif challenge.partner is not None:
        raise ChallengeProblem(
            "partner", "applies only to visits_at_partner and points_in_period challenges"
        )
    limit = MAX_POINTS if kind is ChallengeKind.POINTS_IN_PERIOD else MAX_COUNT
    if not 1 <= challenge.target <= limit:
        raise ChallengeProblem("target", f"must be between 1 and {limit}, got {challenge.target}")
    if kind is ChallengeKind.PARTNERS_IN_PERIOD and challenge.target > len(partners):
        raise ChallengeProblem(
            "target",
            f"is {challenge.target}, but the coalition has only {len(partners)} partners",
        )
    if not 0 <= challenge.bonus_points <= MAX_POINTS:
        raise ChallengeProblem(
            "bonus_points", f"must be between 0 and {MAX_POINTS}, got {challenge.bonus_points}"
        )
    if challenge.bonus_points == 0:
        if challenge.bonus_partner is not None:
            raise ChallengeProblem("bonus_partner", "applies only with bonus_points above 0")
    else:
        bonus_partner = challenge.bonus_partner
        if bonus_partner is None:
            raise ChallengeProblem("bonus_partner", "is required with bonus_points above 0")
        if bonus_partner not in partners:
            raise ChallengeProblem(
                "bonus_partner", f"names unknown partner {bonus_partner[:40]!r}", "unknown_partner"
            )
        if partners[bonus_partner].pool.remote:
            raise ChallengeProblem(
                "bonus_partner",
                f"'{bonus_partner}' keeps its points in its own system; a bonus must be paid "
                "in a pool the gateway keeps",
                "remote",
            )
    owner = challenge.owner
    if owner is not None:
        # A partner's own challenge counts only what it sees (earns in its own pool) and
        # pays only with its own points.
        if not kind.at_one_partner:
            raise ChallengeProblem(
                "kind",
                "a partner's own challenge counts earns at that partner: visits_at_partner "
                "or points_in_period (coalition-wide challenges are the operators')",
            )
        if challenge.partner != owner:
            raise ChallengeProblem("partner", f"a challenge of '{owner}' counts earns at '{owner}'")
        if challenge.bonus_partner not in (None, owner):
            raise ChallengeProblem(
                "bonus_partner", f"a challenge of '{owner}' pays its bonus in '{owner}' points"
            )
    if (
        challenge.valid_from is not None
        and challenge.valid_until is not None
        and challenge.valid_until <= challenge.valid_from
    ):
        raise ChallengeProblem("valid_until", "must be after valid_from")


def _choice(reader: Reader, field: str, enum: type[ChallengeKind] | type[Period]) -> Any:
    text = reader.text(field)
    try:
        return enum(text)
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise reader.fail(field, f"must be one of {choices}, got {text!r}") from None


def _read_one(reader: Reader, partners: Mapping[str, Any]) -> Challenge:
    reader.unknown_keys(set(CHALLENGE_KEYS))
    kind: ChallengeKind = _choice(reader, "kind", ChallengeKind)
    partner = reader.text("partner", required=False) or None
    bonus_points = reader.integer("bonus_points", default=0)
    bonus_partner = reader.text("bonus_partner", required=False) or None
    if bonus_partner is None and bonus_points > 0 and kind.at_one_partner:
        bonus_partner = partner  # a visit challenge pays in the visited partner's points
    challenge = Challenge(
        slug=reader.text("slug"),
        name=reader.text("name"),
        kind=kind,
        period=_choice(reader, "period", Period),
        target=reader.integer("target", minimum=1),
        badge=reader.text("badge"),
        partner=partner,
        bonus_points=bonus_points,
        bonus_partner=bonus_partner,
        description=reader.text("description", required=False) or None,
        valid_from=reader.moment("valid_from", required=False),
        valid_until=reader.moment("valid_until", required=False),
        active=reader.boolean("active", True),
        configured=True,
    )
    try:
        check_challenge(challenge, partners)
    except ChallengeProblem as problem:
        raise reader.fail(problem.field, problem.problem) from None
    return challenge


def read_challenges(reader: Reader, raw: Any, partners: Mapping[str, Any]) -> tuple[Challenge, ...]:
    """The ``[[challenges]]`` of coalition.toml; ``reader`` reads the file's top table."""
    if not isinstance(raw, list):
        raise reader.fail("challenges", "must be an array of tables ([[challenges]])")
    challenges: list[Challenge] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise reader.fail(f"challenges[{index}]", "must be a table")
        one = Reader(reader.file, reader.partner, item, f"challenges[{index}].")
        challenge = _read_one(one, partners)
        if challenge.slug in seen:
            raise one.fail("slug", f"'{challenge.slug}' is used by another challenge")
        seen.add(challenge.slug)
        challenges.append(challenge)
    return tuple(challenges)
