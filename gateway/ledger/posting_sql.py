"""A crediting posting in one PostgreSQL statement (one round trip instead of three).

An earn (or any posting whose only wallet leg credits one wallet) claims the transfer's
idempotency key, credits the wallet and inserts every leg as an entry. On PostgreSQL the
three run as one statement of data-modifying CTEs, the wallet credit and the entries
reading the claimed transfer's id: a taken key inserts nothing and returns no row (the
caller then answers with the first posting, as after ``repository.claim_transfer``). The
statement also reads, for the answer's wallet, the points held and owed there as the
posting leaves them (under the member lock the caller holds), so the answer needs no
further reads. SQLite (and every other posting) keeps ``repository``'s statements.

The statement is plain SQL text, built once per number of legs: no SQL expression is built
or compiled per call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.ledger.records import LegRecord, WalletRecord
from gateway.ledger.rules import AccountCode, Leg

TRANSFER_COLUMNS = (
    "kind",
    "member_id",
    "partner",
    "to_partner",
    "points",
    "received_points",
    "purchase_amount",
    "rate",
    "fee",
    "reason",
    "reverses_id",
    "idempotency_scope",
    "idempotency_key",
    "request_hash",
    "created_at",
)
_TYPES = {
    "points": "BIGINT",
    "received_points": "BIGINT",
    "fee": "BIGINT",
    "reverses_id": "BIGINT",
    "created_at": "TIMESTAMPTZ",
}


def _cast(name: str) -> str:
    return f"CAST(:{name} AS {_TYPES.get(name, 'VARCHAR')})"


def _statement(system_legs: int) -> sa.TextClause:
    """The posting of one wallet credit (leg ``w``) and ``system_legs`` system-account legs
    (``s0``, ``s1``...), the entries in the order the legs were given (the wallet's at
    ``:w_at``)."""
    entries = [
        "SELECT claim.id, wallet.id, CAST(:w_pool AS VARCHAR), CAST(:w_owner AS VARCHAR), "
        "CAST(:w_amount AS BIGINT), wallet.balance, CAST(:w_at AS INTEGER) "
        "FROM claim, wallet"
    ]
    entries += [
        f"SELECT claim.id, CAST(:s{i}_account AS BIGINT), CAST(:s{i}_pool AS VARCHAR), "
        f"CAST(NULL AS VARCHAR), CAST(:s{i}_amount AS BIGINT), CAST(NULL AS BIGINT), "
        f"CAST(:s{i}_at AS INTEGER) FROM claim"
        for i in range(system_legs)
    ]
    return sa.text(
        f"""
WITH claim AS (
    INSERT INTO transfers ({", ".join(TRANSFER_COLUMNS)})
    VALUES ({", ".join(_cast(name) for name in TRANSFER_COLUMNS)})
    ON CONFLICT (idempotency_scope, idempotency_key) DO NOTHING
    RETURNING transfers.id
), wallet AS (
    INSERT INTO accounts (pool, code, member_id, balance)
    SELECT CAST(:w_pool AS VARCHAR), 'wallet', CAST(:w_owner AS VARCHAR),
           CAST(:w_amount AS BIGINT)
    FROM claim
    ON CONFLICT (member_id, pool) WHERE member_id IS NOT NULL
    DO UPDATE SET balance = accounts.balance + excluded.balance
    RETURNING accounts.id, accounts.balance
), legs (transfer_id, account_id, pool, member_id, amount, balance_after, at) AS (
    {" UNION ALL ".join(entries)}
), entered AS (
    INSERT INTO entries (transfer_id, account_id, pool, member_id, amount, balance_after)
    SELECT transfer_id, account_id, pool, member_id, amount, balance_after
    FROM legs ORDER BY at
)
SELECT claim.id AS transfer_id, wallet.balance AS balance,
    (SELECT COALESCE(SUM(holds.points), 0) FROM holds
     WHERE holds.member_id = CAST(:w_owner AS VARCHAR)
       AND holds.partner = CAST(:w_pool AS VARCHAR) AND holds.status = 'authorized') AS held,
    (SELECT COALESCE(MAX(wallet_debts.owed), 0) FROM wallet_debts
     WHERE wallet_debts.member_id = CAST(:w_owner AS VARCHAR)
       AND wallet_debts.pool = CAST(:w_pool AS VARCHAR)) AS owed
FROM claim, wallet
"""
    )


_STATEMENTS: dict[int, sa.TextClause] = {}


def one_statement(connection: AsyncConnection, legs: Sequence[Leg]) -> bool:
    """Whether ``post_credit`` can post ``legs`` here: on PostgreSQL, exactly one wallet leg,
    a credit."""
    if connection.dialect.name != "postgresql":
        return False
    wallet = [leg for leg in legs if leg.is_wallet]
    return len(wallet) == 1 and wallet[0].amount > 0


async def post_credit(
    connection: AsyncConnection,
    values: dict[str, Any],
    member_id: str | None,
    legs: Sequence[Leg],
    system_accounts: dict[tuple[str, AccountCode], int],
) -> tuple[int, list[LegRecord], WalletRecord] | None:
    """Claim the transfer ``values`` describe and post ``legs`` (see ``one_statement``); the
    new transfer's id, its legs and the wallet as the posting left it (with the points held
    and owed there), or None when the idempotency key is taken (nothing was written)."""
    parameters: dict[str, Any] = {name: values.get(name) for name in TRANSFER_COLUMNS}
    system = 0
    wallet_leg: Leg | None = None
    for at, leg in enumerate(legs):
        if leg.is_wallet:
            wallet_leg = leg
            parameters.update(
                w_pool=leg.pool, w_owner=leg.member_id or member_id, w_amount=leg.amount, w_at=at
            )
        else:
            parameters[f"s{system}_account"] = system_accounts[(leg.pool, leg.account)]
            parameters[f"s{system}_pool"] = leg.pool
            parameters[f"s{system}_amount"] = leg.amount
            parameters[f"s{system}_at"] = at
            system += 1
    assert wallet_leg is not None and parameters["w_owner"] is not None
    statement = _STATEMENTS.get(system)
    if statement is None:
        statement = _STATEMENTS[system] = _statement(system)
    row = (await connection.execute(statement, parameters)).first()
    if row is None:
        return None
    transfer_id, owner = int(row.transfer_id), str(parameters["w_owner"])
    records = [
        LegRecord(transfer_id, leg.pool, leg.account, owner, leg.amount, int(row.balance))
        if leg.is_wallet
        else LegRecord(transfer_id, leg.pool, leg.account, None, leg.amount, None)
        for leg in legs
    ]
    wallet = WalletRecord(
        owner, wallet_leg.pool, int(row.balance), owed=int(row.owed), held=int(row.held)
    )
    return transfer_id, records, wallet
