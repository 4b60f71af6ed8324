"""Does a member's history cost? Earlier transfers seeded with SQL, then the same request for a
member with a long history and one with a short one, alternately on one connection.

Seeding (``seed_history``): one statement per member, in one transaction: ``count`` earn
transfers of ``points`` each (``INSERT ... SELECT generate_series``, a second apart, the last
a second ago; scope ``bench-history:<partner>``), each with its two entries (the issuance
account's debit, the wallet's credit with its running ``balance_after``), and the wallet's
balance raised by their sum, so every ledger check still holds. ANALYZE follows, as
autovacuum would after such a load.

Pairs (``run_pair``): ``warmup`` untimed then ``count`` timed requests for each of the two
members, alternating (short, long, short, ...) on one keep-alive connection, so both see the
same load from whatever else runs on the machine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg  # type: ignore[import-untyped]  # ships no type information

from bench.client import HttpConnection, graphql_request
from bench.measurement import percentile
from bench.mutations import EARN, earn_problem
from bench.workload import Earn, Member

SEED = """
WITH wallet AS (
    INSERT INTO accounts (pool, code, member_id, balance)
    VALUES ($2, 'wallet', $1, $3::bigint * $4::bigint)
    ON CONFLICT (member_id, pool) WHERE member_id IS NOT NULL
    DO UPDATE SET balance = accounts.balance + excluded.balance
    RETURNING id, balance - $3::bigint * $4::bigint AS opening
), issuance AS (
    SELECT id FROM accounts WHERE member_id IS NULL AND pool = $2 AND code = 'issuance'
), moved AS (
    INSERT INTO transfers (kind, member_id, partner, points, idempotency_scope,
                           idempotency_key, request_hash, created_at)
    SELECT 'earn', $1, $2, $4, 'bench-history:' || $2, $5 || g, md5($5 || g),
           now() - make_interval(secs => $3 - g + 1)
    FROM generate_series(1, $3::integer) AS g
    RETURNING id
)
INSERT INTO entries (transfer_id, account_id, pool, member_id, amount, balance_after)
SELECT moved.id, issuance.id, $2, NULL, -$4::bigint, NULL FROM moved, issuance
UNION ALL
SELECT moved.id, wallet.id, $2, $1, $4::bigint,
       wallet.opening + $4::bigint * row_number() OVER (ORDER BY moved.id)
FROM moved, wallet
"""
WALLETS = """
query Wallets($id: ID!) { member(id: $id) { wallets { balance } } }
"""


async def seed_history(
    connection: asyncpg.Connection, member: Member, partner: str, count: int, points: int = 1
) -> float:
    """``count`` earlier earn transfers for ``member`` at ``partner``; seconds taken."""
    started = time.perf_counter()
    async with connection.transaction():
        await connection.execute(SEED, member.uuid, partner, count, points, f"seed-{member.uuid}-")
    return time.perf_counter() - started


async def analyze(connection: asyncpg.Connection) -> None:
    await connection.execute("ANALYZE transfers, entries, accounts")


@dataclass(frozen=True)
class Pair:
    """One request's latencies for a member with a short history and one with a long one."""

    name: str
    short_label: str
    long_label: str
    short: list[float]
    long: list[float]
    failures: list[str]

    def p50(self, long: bool) -> float:
        return percentile(self.long if long else self.short, 0.5)

    def mean(self, long: bool) -> float:
        latencies = self.long if long else self.short
        return sum(latencies) / len(latencies) * 1000 if latencies else 0.0

    @property
    def p50_ratio(self) -> float:
        short = self.p50(False)
        return self.p50(True) / short if short else float("nan")

    @property
    def mean_ratio(self) -> float:
        short = self.mean(False)
        return self.mean(True) / short if short else float("nan")


Request = tuple[bytes, Callable[[int, bytes], str | None]]  # the request, its answer's check


async def run_pair(
    name: str,
    labels: tuple[str, str],
    connection: HttpConnection,
    requests: tuple[Sequence[Request], Sequence[Request]],
    warmup: int,
) -> Pair:
    """Alternate the short-history and long-history requests; the first ``warmup`` of each
    are not timed."""
    timed: tuple[list[float], list[float]] = ([], [])
    failures: list[str] = []
    for index, pair in enumerate(zip(*requests, strict=True)):
        for side, (request, check) in enumerate(pair):
            took, status, body = await connection.exchange(request)
            problem = check(status, body)
            if problem is not None:
                failures.append(f"{name} {labels[side]} #{index}: {problem}")
            if index >= warmup:
                timed[side].append(took)
    print(f"  {name}: {len(timed[0])} + {len(timed[1])} requests", flush=True)
    return Pair(name, labels[0], labels[1], timed[0], timed[1], failures)


def earn_requests(port: int, token: str, earns: Sequence[Earn]) -> list[Request]:
    requests: list[Request] = []
    for earn in earns:
        variables = {
            "input": {
                "partner": earn.partner,
                "member": {"id": earn.member.global_id},
                "idempotencyKey": earn.key,
                "points": earn.points,
            }
        }

        def check(status: int, body: bytes, earn: Earn = earn) -> str | None:
            return earn_problem(status, body, earn)

        requests.append((graphql_request(port, token, EARN, variables), check))
    return requests


def wallet_requests(
    port: int, token: str, member: Member, balance: int, count: int
) -> list[Request]:
    """``count`` reads of the member's wallets; each must show ``balance`` in one of them."""
    request = graphql_request(port, token, WALLETS, {"id": member.global_id})

    def check(status: int, body: bytes) -> str | None:
        if status != 200:
            return f"HTTP {status}: {body[:200]!r}"
        document = json.loads(body)
        member_data = (document.get("data") or {}).get("member")
        if document.get("errors") or member_data is None:
            return f"GraphQL errors: {document.get('errors')}"
        balances = [wallet["balance"] for wallet in member_data["wallets"]]
        if balance not in balances:
            return f"no wallet of {balance} points: {balances}"
        return None

    return [(request, check)] * count
