"""No arbitrage through the conversion rates (issue 13).

A set of rules is refused if some cycle of conversions A → B → … → A, started with an amount
every rule on the way accepts, gives back more points than it took, after fees and rounding.
Only simple cycles are considered (each partner once), from each of their partners.

How, exactly and fast:

- A step ``y = rule.received_for(x)`` never falls as ``x`` grows, and
  ``m·x - r·c - 1 - r ≤ y ≤ m·x - r·c`` with ``m = rate·(1 - fee%)``, ``r = rate`` and
  ``c = fee_fixed``. So a cycle returns at most ``Π·x - D`` (``Π`` the product of its ``m``)
  and a start amount ``x`` can only gain if the product of the step ratios ``y/x`` exceeds 1.
  Each ratio is at most ``rho = m - r·c/max_points``; the start amount is at most ``H`` (the
  largest ``max_points``), so a cycle whose ``Πrho`` is below ``1 + 1/(2H)`` returns at most
  ``x + ½``: never a whole point more.
- Cycles are screened on integer weights ``⌈log rho · 2^50⌉`` (rounded up by far more than the
  floating point error, so a screened-out cycle provably cannot gain). Bellman-Ford on them
  proves most coalitions safe in a few passes over the rules; otherwise a depth-first search
  enumerates only the cycles whose weights could still exceed the threshold (pruned with the
  best walk back to the start within the partners left).
- A candidate cycle is decided exactly, in integers and fractions, from each of its partners:
  the start amounts every rule accepts form an interval (ends found by inverting the steps);
  the largest is tried, then the least amount ``x`` with ``Π·x - D > x`` and on by jumps to the
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

STEP_BUDGET = 50_000
"""Search steps (paths extended, amounts tried) one check may take before giving up."""

_SCALE_BITS = 50
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
    """The first cycle of enabled ``rules`` that gains, at ``since`` or at a later moment the
    rules in force change; ``None`` if there is none. Rules are as the reader makes them:
    rate above 0, fee_percent in [0, 100), fee_fixed ≥ 0 (else ``ValueError``)."""
    enabled = [rule for rule in rules if rule.enabled]
    for rule in enabled:
        if rule.rate <= 0 or not 0 <= rule.fee_percent < 100 or rule.fee_fixed < 0:
            raise ValueError(f"conversion rule {rule.source} → {rule.target} is malformed")
    moments = {since}
    for rule in enabled:
        for moment in (rule.effective_from, rule.effective_until):
            if moment is not None and moment > since:
                moments.add(moment)
    checked: set[frozenset[ConversionRule]] = set()
    budget = _Budget()
    for moment in sorted(moments):
        in_force = frozenset(rule for rule in enabled if rule.in_force_at(moment))
        if in_force in checked:
            continue
        checked.add(in_force)
        try:
            found = _check(in_force, moment, budget)
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


_Edge = tuple[ConversionRule, int]  # a rule and its weight


def _check(in_force: frozenset[ConversionRule], at: datetime, budget: _Budget) -> Arbitrage | None:
    usable = sorted(
        (
            rule
            for rule in in_force
            if rule.min_points <= rule.max_points and rule.received_for(rule.max_points) >= 1
        ),
        key=lambda rule: (rule.source, rule.target, rule.effective_from),
    )
    if not usable:
        return None
    largest = max(rule.max_points for rule in usable)
    # A cycle whose ratios multiply to less than 1 + 1/(2·largest) never gains a whole point.
    threshold = math.floor(math.ldexp(math.log1p(1 / (2 * largest)) * (1 - 1e-6), _SCALE_BITS))
    edges = [(rule, _weight(rule)) for rule in usable]
    if _certified(edges, threshold):
        return None
    for cycle in _Cycles(edges, threshold, budget):
        for start in range(len(cycle)):
            steps = cycle[start:] + cycle[:start]
            gain = _gain(steps, budget)
            if gain is not None:
                return Arbitrage(_route(steps), at, *gain)
    return None


def _weight(rule: ConversionRule) -> int:
    """An integer above ``log rho · 2^50``, rho the most ``rule`` gives per point converted."""
    ratio = _multiplier(rule) - Fraction(rule.rate) * rule.fee_fixed / rule.max_points
    return math.ceil(math.ldexp(math.log(ratio) + _LOG_ERROR, _SCALE_BITS))


def _multiplier(rule: ConversionRule) -> Fraction:
    return Fraction(rule.rate) * (1 - Fraction(rule.fee_percent) / 100)


def _route(steps: tuple[ConversionRule, ...]) -> tuple[str, ...]:
    return (steps[0].source, *(rule.target for rule in steps))


def _certified(edges: list[_Edge], threshold: int) -> bool:
    """Bellman-Ford: no cycle weighs more than ``threshold`` (each rule allowed its share)."""
    nodes = {rule.source for rule, _ in edges} | {rule.target for rule, _ in edges}
    share = threshold // len(nodes)
    links = [(rule.source, rule.target, weight - share) for rule, weight in edges]
    label = dict.fromkeys(nodes, 0)
    for _ in range(len(nodes) + 1):
        changed = False
        for source, target, weight in links:
            value = label[source] + weight
            if value > label[target]:
                label[target] = value
                changed = True
        if not changed:
            return True
    return False


class _Cycles:
    """The simple cycles weighing more than ``threshold``, each once (from its least
    partner), heaviest rules first."""

    def __init__(self, edges: list[_Edge], threshold: int, budget: _Budget) -> None:
        self.threshold = threshold
        self.budget = budget
        self.nodes = sorted({rule.source for rule, _ in edges})
        self.out: dict[str, list[_Edge]] = {node: [] for node in self.nodes}
        for rule, weight in sorted(edges, key=lambda edge: -edge[1]):
            self.out[rule.source].append((rule, weight))

    def __iter__(self) -> Iterator[tuple[ConversionRule, ...]]:
        for index, start in enumerate(self.nodes):
            allowed = set(self.nodes[index:])
            best = self._walks_back(start, allowed)
            yield from self._extend(start, start, 0, allowed, best, [], {start})

    def _walks_back(self, start: str, allowed: set[str]) -> list[dict[str, int]]:
        """``best[k][node]``: the heaviest walk of at most ``k`` rules from node to start."""
        links = [
            (node, rule.target, weight)
            for node in allowed
            for rule, weight in self.out[node]
            if rule.target in allowed
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

    def _extend(
        self,
        start: str,
        node: str,
        weight: int,
        allowed: set[str],
        best: list[dict[str, int]],
        path: list[ConversionRule],
        visited: set[str],
    ) -> Iterator[tuple[ConversionRule, ...]]:
        for rule, rule_weight in self.out[node]:
            target = rule.target
            total = weight + rule_weight
            if target == start:
                if total > self.threshold:
                    yield (*path, rule)
                continue
            if target in visited or target not in allowed:
                continue
            back = best[len(allowed) - len(visited)].get(target)
            if back is None or total + back <= self.threshold:
                continue
            self.budget.spend()
            path.append(rule)
            visited.add(target)
            yield from self._extend(start, target, total, allowed, best, path, visited)
            visited.remove(target)
            path.pop()


def _gain(steps: tuple[ConversionRule, ...], budget: _Budget) -> tuple[int, int] | None:
    """A start amount within every rule's bounds that ``steps`` turn into more, and what
    they turn it into; ``None`` if there is none."""
    product, fixed = Fraction(1), Fraction(0)
    for rule in steps:
        multiplier = _multiplier(rule)
        product *= multiplier
        fixed = fixed * multiplier + Fraction(rule.rate) * rule.fee_fixed
    if product <= 1:  # the cycle returns at most product * amount - fixed
        return None
    low, high = 1, -1  # high -1: the last step's output has no upper bound
    for rule in reversed(steps):
        low = max(rule.min_points, rule.points_for(low))
        above = rule.max_points if high < 0 else rule.points_for(high + 1) - 1
        high = min(rule.max_points, above)
    if low > high:
        return None
    returned = _convert(steps, high)
    if returned > high:
        return high, returned
    amount = max(low, math.ceil((fixed + 1) / (product - 1)))
    while amount < high:
        returned = _convert(steps, amount)
        if returned > amount:
            return amount, returned
        budget.spend(_route(steps))
        # Below the least amount that returns more than ``amount``, nothing can gain.
        amount = _points_for(steps, amount + 1)
    return None


def _convert(steps: tuple[ConversionRule, ...], points: int) -> int:
    for rule in steps:
        points = rule.received_for(points)
    return points


def _points_for(steps: tuple[ConversionRule, ...], received: int) -> int:
    for rule in reversed(steps):
        received = rule.points_for(received)
    return received
