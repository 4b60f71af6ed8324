"""No arbitrage through the conversion rates (issue 13).

A set of rules is refused if some cycle of conversions A → B → … → A, started with an amount
every rule on the way accepts, gives back more points than it took, after fees and rounding.
Only simple cycles are considered (each partner once), from each of their partners.

How, exactly and fast:

- A step ``y = rule.received_for(x)`` never falls as ``x`` grows, and
  ``m·x - r·c - 1 - r ≤ y ≤ m·x - r·c`` with ``m = rate·(1 - fee%)``, ``r = rate`` and
  ``c = fee_fixed``. So a cycle returns at most ``P·x - D`` (``P`` the product of its ``m``),
  and it returns more than ``x`` only if the product of its steps' ratios ``y/x`` exceeds 1.
  A rule's ratio is at most ``rho = m - r·c/max_points`` (found exactly for a rule accepting
  fewer than 64 amounts). A start amount is at most ``H``, the largest ``max_points``, so a
  cycle whose rhos multiply to less than ``1 + 1/(2H)`` returns less than ``x + 1``.
- Cycles are screened on integer weights ``⌈log rho · 2^50⌉`` (rounded up by far more than the
  floating point error, so a screened-out cycle provably cannot gain). Bellman-Ford on them
  proves most coalitions safe in a few passes over the rules; otherwise a depth-first search
  enumerates only the cycles whose weights could still exceed the threshold (pruned with the
  best walk back to the start within the partners left).
- A candidate cycle is decided exactly, in integers and fractions, from each of its partners:
  the start amounts every rule accepts form an interval (ends found by inverting the steps);
  the largest is tried, then the least amount ``x`` with ``P·x - D > x`` and on by jumps to the
  least amount that could return more than the last one tried, up to the interval's end.

If the search would take more than ``STEP_BUDGET`` steps (only for contrived rules: many
cycles whose rates gain but whose bounds stop every gain, or a gain of a few parts per
million), the rules are refused as :class:`Unproven` rather than accepted unchecked.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, time
from fractions import Fraction

from partners.config.conversions import ConversionRule

STEP_BUDGET = 30_000
"""Search steps (paths extended, amounts tried) one check may take before giving up."""

_SCALE_BITS = 50
_SCANNED = 64  # a rule accepting fewer amounts has its best ratio found exactly
_LOG_ERROR = 1e-12  # far above the error of math.log on a float near a rule's ratio


@dataclass(frozen=True)
class Arbitrage:
    """``points_in`` points of ``cycle[0]`` converted round ``cycle`` return ``points_out``."""

    cycle: tuple[str, ...]
    at: datetime
    points_in: int
    points_out: int

    @property
    def message(self) -> str:
        return (
            f"converting {self.points_in} points round {' → '.join(self.cycle)} from "
            f"{_moment(self.at)} returns {self.points_out}"
        )

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Unproven:
    """The rules in force from ``at`` could not be proven free of arbitrage in time."""

    at: datetime
    cycle: tuple[str, ...]  # the cycle under examination when the budget ran out, or ()

    @property
    def message(self) -> str:
        examining = f" (examining {' → '.join(self.cycle)})" if self.cycle else ""
        return (
            f"the conversion rules in force from {_moment(self.at)} could not be proven free "
            f"of arbitrage within {STEP_BUDGET} steps{examining}; make the rates that gain "
            "round a cycle lower rather than relying on bounds or fees to stop the gain"
        )

    def __str__(self) -> str:
        return self.message


def find_arbitrage(rules: Iterable[ConversionRule], since: datetime) -> Arbitrage | Unproven | None:
    """The first cycle of enabled ``rules`` that gains, at ``since`` or at a later moment a
    rule takes effect; ``None`` if there is none. Rules are as the reader makes them:
    rate above 0, fee_percent in [0, 100), fee_fixed ≥ 0, min_points ≥ 1 (else ``ValueError``).
    """
    enabled = [rule for rule in rules if rule.enabled]
    for rule in enabled:
        if (
            rule.rate <= 0
            or not 0 <= rule.fee_percent < 100
            or rule.fee_fixed < 0
            or rule.min_points < 1
        ):
            raise ValueError(f"conversion rule {rule.source} → {rule.target} is malformed")
    steps = [
        _Step(rule)
        for rule in sorted(enabled, key=lambda rule: (rule.source, rule.target))
        if (rule.effective_until is None or rule.effective_until > since)
        and rule.min_points <= rule.max_points
        and rule.received_for(rule.max_points) >= 1
    ]
    if not steps:
        return None
    # Only a rule taking effect can make a cycle: when rules only end, no new cycle appears.
    starts = {step.rule.effective_from for step in steps}
    moments = sorted({since} | {moment for moment in starts if moment > since})
    checker = _Checker(steps)
    checked: set[frozenset[int]] = set()
    for moment in moments:
        in_force = [step for step in steps if step.rule.in_force_at(moment)]
        key = frozenset(map(id, in_force))
        if key in checked:
            continue
        checked.add(key)
        try:
            found = checker.check(in_force, moment)
        except _OutOfBudget as stop:
            return Unproven(moment, stop.cycle)
        if found is not None:
            return found
    return None


def _moment(at: datetime) -> str:
    return at.date().isoformat() if at.time() == time(0) else at.isoformat()


class _OutOfBudget(Exception):
    def __init__(self, cycle: tuple[str, ...]) -> None:
        super().__init__()
        self.cycle = cycle


class _Budget:
    def __init__(self) -> None:
        self.left = STEP_BUDGET

    def spend(self, cycle: tuple[str, ...] = ()) -> None:
        self.left -= 1
        if self.left < 0:
            raise _OutOfBudget(cycle)


class _Step:
    """A usable rule, its exact multiplier ``rate * (1 - fee%)`` and its screening weight."""

    __slots__ = ("multiplier", "rule", "weight")

    def __init__(self, rule: ConversionRule) -> None:
        self.rule = rule
        self.multiplier = Fraction(rule.rate) * (1 - Fraction(rule.fee_percent) / 100)
        # Above log(rho) * 2^50, rho the most the rule gives per point (see the module doc).
        if rule.max_points - rule.min_points < _SCANNED:
            amounts = range(rule.min_points, rule.max_points + 1)
            ratio = max(Fraction(rule.received_for(amount), amount) for amount in amounts)
        else:
            ratio = self.multiplier - Fraction(rule.rate) * rule.fee_fixed / rule.max_points
        self.weight = math.ceil(math.ldexp(math.log(ratio) + _LOG_ERROR, _SCALE_BITS))


_Cycle = tuple[_Step, ...]


class _Checker:
    """Checks the rules in force at successive moments, each check starting from the
    Bellman-Ford labels the last one ended with (a rule taking effect rarely moves many)."""

    def __init__(self, steps: list[_Step]) -> None:
        self.budget = _Budget()
        self.nodes = {step.rule.source for step in steps} | {step.rule.target for step in steps}
        largest = max(step.rule.max_points for step in steps)
        # A cycle whose ratios multiply to less than 1 + 1/(2·largest) never gains a point.
        self.threshold = math.floor(
            math.ldexp(math.log1p(1 / (2 * largest)) * (1 - 1e-6), _SCALE_BITS)
        )
        self.share = self.threshold // len(self.nodes)  # a cycle has at most one rule a node
        self.labels = dict.fromkeys(self.nodes, 0)

    def check(self, steps: list[_Step], at: datetime) -> Arbitrage | None:
        if self._certified(steps):
            return None
        for cycle in _Cycles(steps, self.threshold, self.budget):
            product = math.prod((step.multiplier for step in cycle), start=Fraction(1))
            if product <= 1:  # the cycle returns at most product * amount
                continue
            for start in range(len(cycle)):
                rotation = cycle[start:] + cycle[:start]
                gain = _gain(rotation, product, self.budget)
                if gain is not None:
                    return Arbitrage(_route(rotation), at, *gain)
        return None

    def _certified(self, steps: list[_Step]) -> bool:
        """Bellman-Ford: no cycle weighs more than the threshold (each rule its share)."""
        links = [(step.rule.source, step.rule.target, step.weight - self.share) for step in steps]
        label = self.labels
        for _ in range(len(self.nodes) + 1):
            changed = False
            for source, target, weight in links:
                value = label[source] + weight
                if value > label[target]:
                    label[target] = value
                    changed = True
            if not changed:
                return True
        self.labels = dict.fromkeys(self.nodes, 0)
        return False


def _route(steps: _Cycle) -> tuple[str, ...]:
    return (steps[0].rule.source, *(step.rule.target for step in steps))


class _Cycles:
    """The simple cycles weighing more than ``threshold``, shortest first, each once (from
    its least partner), heaviest rules first."""

    def __init__(self, steps: list[_Step], threshold: int, budget: _Budget) -> None:
        self.threshold = threshold
        self.budget = budget
        self.nodes = sorted({step.rule.source for step in steps})
        self.out: dict[str, list[_Step]] = {node: [] for node in self.nodes}
        for step in sorted(steps, key=lambda step: -step.weight):
            self.out[step.rule.source].append(step)

    def __iter__(self) -> Iterator[_Cycle]:
        walks: dict[str, list[dict[str, int]]] = {}
        for length in range(1, len(self.nodes) + 1):
            for index, start in enumerate(self.nodes[: len(self.nodes) - length + 1]):
                allowed = set(self.nodes[index:])
                if length > 1 and start not in walks:  # a single rule needs no way back
                    walks[start] = self._walks_back(start, allowed)
                search = _Search(self, start, allowed, walks.get(start, []), length)
                yield from search.extend(start, 0)

    def _walks_back(self, start: str, allowed: set[str]) -> list[dict[str, int]]:
        """``best[k][node]``: the heaviest walk of at most ``k`` rules from node to start."""
        links = [
            (node, step.rule.target, step.weight)
            for node in allowed
            for step in self.out[node]
            if step.rule.target in allowed
        ]
        best = [{start: 0}]
        for _ in range(len(allowed)):
            previous = best[-1]
            current = dict(previous)
            for node, target, weight in links:
                after = previous.get(target)
                if after is not None and (node not in current or after + weight > current[node]):
                    current[node] = after + weight
            best.append(current)
        return best


class _Search:
    """The cycles of ``length`` rules from ``start`` through ``allowed`` partners."""

    def __init__(
        self,
        cycles: _Cycles,
        start: str,
        allowed: set[str],
        best: list[dict[str, int]],
        length: int,
    ) -> None:
        self.cycles, self.start, self.allowed, self.best = cycles, start, allowed, best
        self.length = length
        self.path: list[_Step] = []
        self.visited = {start}

    def extend(self, node: str, weight: int) -> Iterator[_Cycle]:
        last = len(self.path) + 1 == self.length
        for step in self.cycles.out[node]:
            target = step.rule.target
            total = weight + step.weight
            if last or target == self.start:
                if last and target == self.start and total > self.cycles.threshold:
                    yield (*self.path, step)
                continue
            if target in self.visited or target not in self.allowed:
                continue
            back = self.best[self.length - len(self.path) - 1].get(target)
            if back is None or total + back <= self.cycles.threshold:
                continue
            self.cycles.budget.spend()
            self.path.append(step)
            self.visited.add(target)
            yield from self.extend(target, total)
            self.visited.remove(target)
            self.path.pop()


def _gain(steps: _Cycle, product: Fraction, budget: _Budget) -> tuple[int, int] | None:
    """A start amount within every rule's bounds that ``steps`` turn into more, and what
    they turn it into; ``None`` if there is none. ``product``: of the steps' multipliers."""
    budget.spend(_route(steps))
    rules = [step.rule for step in steps]
    low, high = 1, -1  # high -1: the last rule's output has no upper bound
    for rule in reversed(rules):
        low = max(rule.min_points, rule.points_for(low))
        above = rule.max_points if high < 0 else rule.points_for(high + 1) - 1
        high = min(rule.max_points, above)
    if low > high:
        return None
    returned = _convert(rules, high)
    if returned > high:
        return high, returned
    fixed = Fraction(0)  # the cycle returns at most product * amount - fixed
    for step in steps:
        fixed = fixed * step.multiplier + Fraction(step.rule.rate) * step.rule.fee_fixed
    amount = max(low, math.ceil((fixed + 1) / (product - 1)))
    while amount < high:
        returned = _convert(rules, amount)
        if returned > amount:
            return amount, returned
        budget.spend(_route(steps))
        # Below the least amount that returns more than ``amount``, nothing can gain.
        amount = _points_for(rules, amount + 1)
    return None


def _convert(rules: list[ConversionRule], points: int) -> int:
    for rule in rules:
        points = rule.received_for(points)
    return points


def _points_for(rules: list[ConversionRule], received: int) -> int:
    for rule in reversed(rules):
        received = rule.points_for(received)
    return received
