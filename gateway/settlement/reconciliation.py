"""Reconciliation: every way the ledger, its obligations and the settlement statements
could disagree, checked in the database, and a report of what differs for an operator."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.settlement import statement_sql
from gateway.settlement.records import Finding, positions_of

LISTED = 20  # rows a reconciliation report lists per check
ZERO = Decimal(0)

_LAST_CLOSE = "(SELECT MAX(closes_at) FROM settlement_periods)"

LEDGER_CHECKS = {
    "a conversion has no obligation from its source partner (transfer, from, to)": """
        SELECT t.id, t.partner, t.to_partner FROM transfers t
        WHERE t.kind = 'conversion' AND NOT EXISTS (
            SELECT 1 FROM obligations o WHERE o.transfer_id = t.id AND o.debtor = t.partner)
    """,
    "a reversed conversion has no obligation giving its value back (reversal, conversion)": """
        SELECT r.id, t.id FROM transfers r JOIN transfers t ON t.id = r.reverses_id
        WHERE r.kind = 'reversal' AND t.kind = 'conversion' AND NOT EXISTS (
            SELECT 1 FROM obligations o WHERE o.debtor = t.to_partner
              AND (o.transfer_id = r.id OR o.transfer_id = t.id))
    """,
    "a cross-brand reward redemption has no reward obligation (redemption, paid with, reward's "
    "partner)": """
        SELECT r.id, r.paid_with, r.partner FROM reward_redemptions r
        WHERE r.paid_with <> r.partner AND NOT EXISTS (
            SELECT 1 FROM obligations o WHERE o.redemption_id = r.id AND o.kind = 'reward'
              AND o.debtor = r.paid_with AND o.creditor = r.partner)
    """,
    "a movement has more than one obligation of a kind (transfer, debtor, kind, count)": """
        SELECT transfer_id, debtor, kind, COUNT(*) FROM obligations
        WHERE transfer_id IS NOT NULL
        GROUP BY transfer_id, debtor, kind HAVING COUNT(*) > 1
    """,
    "an obligation created before the last close is in no statement (obligation, kind, "
    "debtor, creditor)": f"""
        SELECT o.id, o.kind, o.debtor, o.creditor FROM obligations o
        WHERE o.statement_period IS NULL AND o.created_at < {_LAST_CLOSE}
    """,
    "an obligation is in a period that was never closed (obligation, period)": """
        SELECT o.id, o.statement_period FROM obligations o
        WHERE o.statement_period IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM settlement_periods p WHERE p.id = o.statement_period)
    """,
    "a period's count of obligations differs from the obligations it holds (period, "
    "recorded, held)": """
        SELECT p.id, p.obligation_count, COUNT(o.id) FROM settlement_periods p
        LEFT JOIN obligations o ON o.statement_period = p.id
        GROUP BY p.id, p.obligation_count HAVING p.obligation_count <> COUNT(o.id)
    """,
    "a fee mark names a period that was never closed (transfer, period)": """
        SELECT s.transfer_id, s.period_id FROM settled_transfers s
        WHERE NOT EXISTS (SELECT 1 FROM settlement_periods p WHERE p.id = s.period_id)
    """,
    "a fee-bearing transfer created before the last close was never charged (transfer, "
    "kind, partner)": f"""
        SELECT t.id, t.kind, t.partner FROM transfers t
        LEFT JOIN transfers original ON original.id = t.reverses_id
        WHERE t.created_at < {_LAST_CLOSE}
          AND (t.kind IN ('earn', 'conversion')
               OR (t.kind = 'reversal' AND original.kind IN ('earn', 'conversion')))
          AND NOT EXISTS (SELECT 1 FROM settled_transfers s WHERE s.transfer_id = t.id)
    """,
}


async def ledger_findings(
    connection: AsyncConnection, limit: int = 20
) -> list[tuple[str, int, list[tuple[Any, ...]]]]:
    """(check, how many rows break it, the first ``limit`` of them) for each failed check."""
    found = []
    for name, query in LEDGER_CHECKS.items():
        rows = [tuple(row) for row in await connection.execute(sa.text(query))]
        if rows:
            found.append((name, len(rows), rows[:limit]))
    return found


STATEMENT_DIFFERS = (
    "a statement differs from the sum of its obligations (period, partner, figure, stored, "
    "from the obligations)"
)
PAIR_DIFFERS = (
    "a bilateral position differs from its obligations (period, which, debtor, creditor, amount)"
)
PAIRS_UNBALANCED = (
    "a partner's bilateral positions do not add up to its net (period, partner, net, sum of "
    "positions)"
)
FIGURES = ("gross_payable", "gross_receivable", "fees", "net", "obligation_count")


async def period_findings(
    connection: AsyncConnection, period_id: int
) -> dict[str, list[tuple[Any, ...]]]:
    """What differs in one closed period, by check: its statements and pairs against what
    its obligations add up to now, and each partner's pairs against its net."""
    have, have_pairs = await statement_sql.stored(connection, period_id)
    want, want_pairs = await statement_sql.expected(
        connection, period_id, [row.partner for row in have]
    )
    found: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    stored_rows = {row.partner: row for row in have}
    wanted_rows = {row.partner: row for row in want}
    for partner in sorted(stored_rows.keys() | wanted_rows.keys()):
        stored_row, wanted_row = stored_rows.get(partner), wanted_rows.get(partner)
        for figure in FIGURES:
            stored_value = getattr(stored_row, figure, "no statement")
            wanted_value = getattr(wanted_row, figure, "no statement")
            if stored_value != wanted_value:
                found[STATEMENT_DIFFERS].append(
                    (period_id, partner, figure, stored_value, wanted_value)
                )
    stored_pairs = {(p.debtor, p.creditor, p.amount) for p in have_pairs}
    wanted_pairs = {(p.debtor, p.creditor, p.amount) for p in want_pairs}
    found[PAIR_DIFFERS] += [(period_id, "stored", *p) for p in sorted(stored_pairs - wanted_pairs)]
    found[PAIR_DIFFERS] += [
        (period_id, "from the obligations", *p) for p in sorted(wanted_pairs - stored_pairs)
    ]
    for row in have:
        total = sum((p.net for p in positions_of(row.partner, have_pairs)), ZERO)
        if total != row.net:
            found[PAIRS_UNBALANCED].append((period_id, row.partner, row.net, total))
    return found


def report(findings: Sequence[Finding]) -> str:
    """A readable account of what differs, for an operator."""
    if not findings:
        return "consistent: the ledger's obligations and the settlement statements agree."
    lines = [f"INCONSISTENT: {len(findings)} check(s) failed."]
    for finding in findings:
        lines.append(f"- {finding.check}: {finding.count}")
        lines.extend("    " + ", ".join(_shown(value) for value in row) for row in finding.rows)
        if finding.count > len(finding.rows):
            lines.append(f"    ... and {finding.count - len(finding.rows)} more")
    return "\n".join(lines)


def _shown(value: object) -> str:
    return str(value) if isinstance(value, Decimal | int) else repr(value)
