"""The posting's own writes: claim the transfer's key, move the wallets, enter every leg.

Statements are chosen so that PostgreSQL and SQLite give the same behaviour: wallet
debits are one conditional UPDATE (never a read-then-write), wallet credits one upsert,
and the idempotency key is claimed by the transfer row's unique index (``claim_transfer``
then ``post_legs``).

A crediting posting runs in one PostgreSQL statement (one round trip instead of three):
an earn (or any posting whose only wallet leg credits one wallet) claims the transfer's
idempotency key, credits the wallet and inserts every leg as an entry. On PostgreSQL the
three run as one statement of data-modifying CTEs, the wallet credit and the entries
reading the claimed transfer's id: a taken key inserts nothing and returns no row (the
caller then answers with the first posting, as after ``claim_transfer``). The
statement also reads, for the answer's wallet, the points held and owed there as the
posting leaves them (under the member lock the caller holds), so the answer needs no
further reads. SQLite (and every other posting) takes ``claim_transfer`` and ``post_legs``.

That statement is plain SQL text, built once per number of legs: no SQL expression is built
or compiled per call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.ledger.records import LegRecord, WalletRecord
from gateway.ledger.rules import AccountCode, Leg
from gateway.ledger.store import wallet_balance
from gateway.ledger.tables import accounts, entries, transfers


class Overdraft(Exception):
    """A wallet debit found fewer points than it needed; the transaction must roll back."""

    def __init__(self, pool: str, needed: int, available: int) -> None:
        super().__init__(f"{pool}: needed {needed}, available {available}")
        self.pool = pool
        self.needed = needed
        self.available = available


class _Writes:
    """The statements of ``claim_transfer`` and ``post_legs``, built once per dialect and
    bound per call."""

    def __init__(self, dialect: str) -> None:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self.claim_transfer = (
            insert(transfers)
            .on_conflict_do_nothing(index_elements=["idempotency_scope", "idempotency_key"])
            .returning(transfers.c.id)
        )
        credit = insert(accounts).values(
            pool=sa.bindparam("pool"),
            code=AccountCode.WALLET.value,
            member_id=sa.bindparam("member_id"),
            balance=sa.bindparam("points"),
        )
        self.credit_wallet = credit.on_conflict_do_update(
            index_elements=["member_id", "pool"],
            index_where=accounts.c.member_id.isnot(None),
            set_={"balance": accounts.c.balance + credit.excluded.balance},
        ).returning(accounts.c.id, accounts.c.balance)
        # One statement: under concurrent debits PostgreSQL re-checks the condition on the
        # latest row version after the row lock, so a wallet is never overdrawn.
        self.debit_wallet = (
            sa.update(accounts)
            .where(
                accounts.c.member_id == sa.bindparam("member"),
                accounts.c.pool == sa.bindparam("wallet_pool"),
                accounts.c.balance >= sa.bindparam("points"),
            )
            .values(balance=accounts.c.balance - sa.bindparam("points"))
            .returning(accounts.c.id, accounts.c.balance)
        )
        self.insert_entries = sa.insert(entries)


_WRITES: dict[str, _Writes] = {}


def _writes(connection: AsyncConnection) -> _Writes:
    name = connection.dialect.name
    if name not in _WRITES:
        _WRITES[name] = _Writes(name)
    return _WRITES[name]


async def claim_transfer(connection: AsyncConnection, values: dict[str, Any]) -> int | None:
    """Insert a transfer; None when its idempotency key is taken (after the taker commits)."""
    transfer_id = (await connection.execute(_writes(connection).claim_transfer, values)).scalar()
    return None if transfer_id is None else int(transfer_id)


async def post_legs(
    connection: AsyncConnection,
    transfer_id: int,
    member_id: str | None,
    legs: Sequence[Leg],
    system_accounts: dict[tuple[str, AccountCode], int],
) -> list[LegRecord]:
    """Apply the wallet legs (in pool order, so two transfers never deadlock) and insert
    every leg as an entry. Raises ``Overdraft`` when a debit finds too few points."""
    wallet_state: dict[tuple[str, str], tuple[int, int]] = {}
    wallet_legs = [(leg.pool, leg.member_id or member_id, leg) for leg in legs if leg.is_wallet]
    for pool, owner, leg in sorted(wallet_legs, key=lambda item: (item[0], item[1] or "")):
        assert owner is not None
        if leg.amount > 0:
            wallet_state[(pool, owner)] = await _credit_wallet(connection, owner, pool, leg.amount)
        else:
            wallet_state[(pool, owner)] = await _debit_wallet(connection, owner, pool, -leg.amount)
    records: list[LegRecord] = []
    rows: list[dict[str, Any]] = []
    for leg in legs:
        if leg.is_wallet:
            owner = leg.member_id or member_id
            assert owner is not None
            account_id, balance_after = wallet_state[(leg.pool, owner)]
            record = LegRecord(transfer_id, leg.pool, leg.account, owner, leg.amount, balance_after)
        else:
            account_id = system_accounts[(leg.pool, leg.account)]
            record = LegRecord(transfer_id, leg.pool, leg.account, None, leg.amount, None)
        records.append(record)
        rows.append(
            {
                "transfer_id": transfer_id,
                "account_id": account_id,
                "pool": record.pool,
                "member_id": record.member_id,
                "amount": record.amount,
                "balance_after": record.balance_after,
            }
        )
    await connection.execute(_writes(connection).insert_entries, rows)
    return records


async def _credit_wallet(
    connection: AsyncConnection, member_id: str, pool: str, points: int
) -> tuple[int, int]:
    parameters = {"pool": pool, "member_id": member_id, "points": points}
    row = (await connection.execute(_writes(connection).credit_wallet, parameters)).one()
    return row.id, row.balance


async def _debit_wallet(
    connection: AsyncConnection, member_id: str, pool: str, points: int
) -> tuple[int, int]:
    parameters = {"member": member_id, "wallet_pool": pool, "points": points}
    row = (await connection.execute(_writes(connection).debit_wallet, parameters)).first()
    if row is None:
        raise Overdraft(pool, points, await wallet_balance(connection, member_id, pool))
    return row.id, row.balance


# A crediting posting in one PostgreSQL statement

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
