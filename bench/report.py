"""The printed report: results, ratios, CPU use, connections, the gateway's log, the
ledger's consistency and failed earns, each a block of lines."""

from __future__ import annotations

import os

from bench.database import Ledger
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


def header(options: Options, database: str, version: str) -> list[str]:
    pool = os.environ.get("DB_POOL_SIZE")
    pool = f"DB pool {pool} (DB_POOL_SIZE)" if pool else "its default DB pool"
    return [
        f"machine: {os.cpu_count()} cores; {version.split(' on ')[0]}; database {database}",
        f"parameters: members {options.members} per partner "
        f"({len(PARTNERS) * options.members} in all), "
        f"requests {options.requests} per scenario after a warm-up of {options.warmup}, "
        f"concurrency {options.concurrency}, gateway workers {options.workers} "
        f"({pool} per worker), seed {options.seed}",
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
        "and the same Python work the gateway does per posting)"
    )
    return lines


def consistency_lines(ledger: Ledger) -> list[str]:
    lines = ["consistency:"]
    for pool in ledger.pools:
        lines.append(
            f"  pool {pool.pool:<10} {pool.entries:>7} entries, "
            f"sum {pool.total:>3}  {'ok' if pool.balanced else 'NOT ZERO'}"
        )
    lines.append(
        f"  wallets: {ledger.wallets} checked, {ledger.mismatched} differ "
        f"from the sum of their entries"
    )
    lines.append(
        f"  transfers: {ledger.transfers} posted for {ledger.expected} earns; "
        f"{ledger.entries} entries, {ledger.odd_transfers} transfers without exactly two"
    )
    lines.append(f"  => {'CONSISTENT' if ledger.consistent else 'INCONSISTENT'}")
    return lines


def failure_lines(results: dict[str, Result]) -> list[str]:
    lines = []
    for result in results.values():
        if result.failures:
            lines.append(f"{result.name}: {len(result.failures)} failed earns")
            lines.extend(f"  {failure}" for failure in result.failures[:SHOWN_FAILURES])
            if len(result.failures) > SHOWN_FAILURES:
                lines.append(f"  ... and {len(result.failures) - SHOWN_FAILURES} more")
    return lines


def print_report(
    header_lines: list[str],
    results: dict[str, Result],
    spread: str,
    reopened: int,
    log_problems: list[str],
    ledger: Ledger,
) -> None:
    """Every block, a blank line between blocks; ``spread`` is server.spread_line's."""
    sections = [
        header_lines,
        results_table(results),
        ratios_table(results),
        usage_table(results, os.cpu_count() or 1),
        per_earn_table(results),
        [
            spread,
            f"connections reopened during the run (closed by the server, or after a failure): "
            f"{reopened}",
        ],
        [
            f"gateway log: {len(log_problems)} warning/error lines",
            *log_problems[:SHOWN_LOG_LINES],
        ],
        consistency_lines(ledger),
        failure_lines(results),
    ]
    print()
    print("\n\n".join("\n".join(section) for section in sections if section))
