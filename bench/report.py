"""The printed report: results, ratios, CPU use, connections, the gateway's log, the
ledger's consistency and failed earns, each a block of lines."""

from __future__ import annotations

import os
from dataclasses import dataclass

from bench.consistency import Ledger, consistency_lines
from bench.history import Pair
from bench.measurement import Result
from bench.options import Options
from bench.workload import PARTNERS

SHOWN_FAILURES = 20
SHOWN_LOG_LINES = 10
RATIOS = (
    ("gateway/direct spread", "gateway spread", "direct spread"),
    ("gateway/direct hot", "gateway hot", "direct hot"),
    ("hot/spread gateway", "gateway hot", "gateway spread"),
    ("hot/spread direct", "direct hot", "direct spread"),
)


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator else "n/a"


def header(options: Options, database: str, version: str, programme: str) -> list[str]:
    pool = os.environ.get("DB_POOL_SIZE")
    pool = f"DB pool {pool} (DB_POOL_SIZE)" if pool else "its default DB pool"
    return [
        f"machine: {os.cpu_count()} cores; {version.split(' on ')[0]}; database {database}",
        f"parameters: members {options.members} per partner "
        f"({len(PARTNERS) * options.members} in all), "
        f"requests {options.requests} per scenario after a warm-up of {options.warmup}, "
        f"concurrency {options.concurrency}, gateway workers {options.workers} "
        f"({pool} per worker), seed {options.seed}",
        f"programme on (the demo configuration): {programme}",
    ]


def results_table(results: dict[str, Result]) -> list[str]:
    lines = [
        f"{'scenario':<16}{'earns':>7}{'earns/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'failures':>10}"
    ]
    for result in results.values():
        lines.append(
            f"{result.name:<16}{len(result.latencies):>7}{result.rate:>10.1f}"
            f"{result.percentile(0.50):>9.2f}{result.percentile(0.99):>9.2f}"
            f"{len(result.failures):>10}"
        )
    return lines


def ratios_table(results: dict[str, Result]) -> list[str]:
    lines = [f"{'ratio':<24}{'earns/s':>9}{'p50':>9}{'p99':>9}"]
    for label, top, bottom in RATIOS:
        if top not in results or bottom not in results:
            continue
        a, b = results[top], results[bottom]
        lines.append(
            f"{label:<24}{ratio(a.rate, b.rate):>9}"
            f"{ratio(a.percentile(0.5), b.percentile(0.5)):>9}"
            f"{ratio(a.percentile(0.99), b.percentile(0.99)):>9}"
        )
    return lines


def usage_table(results: dict[str, Result], cores: int) -> list[str]:
    lines = [
        f"{'cores busy (of ' + str(cores) + ')':<20}{'machine':>8}{'gateway':>9}"
        f"{'bench':>7}{'other':>7}{'stolen':>8}{'new db sessions':>17}"
    ]
    for result in results.values():
        use = result.usage
        lines.append(
            f"{result.name:<20}{use.machine:>8.2f}{use.gateway:>9.2f}"
            f"{use.bench:>7.2f}{use.other:>7.2f}{use.steal:>8.2f}{use.sessions:>17}"
        )
    lines.append(
        "(other = machine - gateway - bench, mostly PostgreSQL; stolen by the "
        "hypervisor; sessions from pg_stat_database)"
    )
    return lines


def per_earn_table(results: dict[str, Result]) -> list[str]:
    lines = [f"{'CPU ms per earn':<20}{'machine':>8}{'gateway':>9}{'bench':>7}{'other':>7}"]
    for result in results.values():
        use = result.usage
        lines.append(
            f"{result.name:<20}{result.per_earn(use.machine):>8.2f}"
            f"{result.per_earn(use.gateway):>9.2f}{result.per_earn(use.bench):>7.2f}"
            f"{result.per_earn(use.other):>7.2f}"
        )
    lines.append(
        "(bench in the gateway rows = this HTTP client; in the direct rows = asyncpg "
        "and filling in the recorded statements)"
    )
    return lines


def pairs_table(pairs: list[Pair]) -> list[str]:
    lines = [
        f"{'one request, alternately':<40}{'p50 ms':>8}{'mean ms':>9}{'per s':>8}{'failures':>10}"
    ]
    for pair in pairs:
        for long, label in ((False, pair.short_label), (True, pair.long_label)):
            mean = pair.mean(long)
            lines.append(
                f"{pair.name + ', ' + label:<40}{pair.p50(long):>8.2f}{mean:>9.2f}"
                f"{1000 / mean if mean else 0:>8.1f}"
                f"{len(pair.failures) if long else '':>10}"
            )
        lines.append(
            f"{'  ' + pair.long_label + ' / ' + pair.short_label:<40}"
            f"{pair.p50_ratio:>7.2f}x{pair.mean_ratio:>8.2f}x"
        )
    return lines


def aims_table(results: dict[str, Result], pairs: dict[str, Pair]) -> list[str]:
    """Issue 11's aims beside this run's figures: reported, never a failure."""
    figures: list[tuple[str, float | None, str, bool]] = []

    def rate(top: str, bottom: str) -> float | None:
        if top in results and bottom in results and results[bottom].rate:
            return results[top].rate / results[bottom].rate
        return None

    for kind in ("spread", "hot"):
        value = rate(f"gateway {kind}", f"direct {kind}")
        figures.append((f"gateway / direct earns/s, {kind}", value, ">= 0.5", (value or 0) >= 0.5))
    for side in ("gateway", "direct"):
        value = rate(f"{side} hot", f"{side} spread")
        figures.append((f"hot / spread earns/s, {side}", value, ">= 0.9", (value or 0) >= 0.9))
    for name, limit in (("earn", 1.1), ("wallet read", 1.2)):
        if name in pairs:
            pair = pairs[name]
            value = pair.p50_ratio
            label = f"{name} p50, {pair.long_label} / {pair.short_label}"
            figures.append((label, value, f"<= {limit}", value <= limit))
    lines = [f"{'aims (issue 11, this machine)':<52}{'figure':>8}{'aim':>9}"]
    for label, value, aim, met in figures:
        shown = f"{value:.2f}" if value is not None else "n/a"
        lines.append(f"{label:<52}{shown:>8}{aim:>9}  {'met' if met else 'MISSED'}")
    lines.append("(an aim missed is reported, not a failure: the exit status is for errors)")
    return lines


def failure_lines(results: dict[str, Result], pairs: list[Pair]) -> list[str]:
    lines = []
    for pair in pairs:
        if pair.failures:
            lines.append(f"{pair.name}: {len(pair.failures)} failed requests")
            lines.extend(f"  {failure}" for failure in pair.failures[:SHOWN_FAILURES])
    for result in results.values():
        if result.failures:
            lines.append(f"{result.name}: {len(result.failures)} failed earns")
            lines.extend(f"  {failure}" for failure in result.failures[:SHOWN_FAILURES])
            if len(result.failures) > SHOWN_FAILURES:
                lines.append(f"  ... and {len(result.failures) - SHOWN_FAILURES} more")
    return lines


@dataclass(frozen=True)
class Report:
    header: list[str]
    results: dict[str, Result]
    pairs: dict[str, Pair]  # "earn", "wallet read"
    direct: list[str]  # what direct sends (bench.trace), one line each
    spread: str  # server.spread_line's
    reopened: int
    log_problems: list[str]
    ledger: Ledger


def print_report(report: Report) -> None:
    """Every block, a blank line between blocks."""
    results, pairs = report.results, list(report.pairs.values())
    sections = [
        report.header,
        results_table(results),
        ratios_table(results),
        pairs_table(pairs),
        aims_table(results, report.pairs),
        usage_table(results, os.cpu_count() or 1),
        per_earn_table(results),
        report.direct,
        [
            report.spread,
            f"connections reopened during the run (closed by the server, or after a failure): "
            f"{report.reopened}",
        ],
        [
            f"gateway log: {len(report.log_problems)} warning/error lines",
            *report.log_problems[:SHOWN_LOG_LINES],
        ],
        consistency_lines(report.ledger),
        failure_lines(results, pairs),
    ]
    print()
    print("\n\n".join("\n".join(section) for section in sections if section))
