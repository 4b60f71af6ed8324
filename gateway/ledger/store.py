"""SQL for the ledger: the only module that knows the tables' shape.

Functions take an open ``AsyncConnection``; the unit of work decides the transaction.
Statements are chosen so that PostgreSQL and SQLite give the same behaviour: wallet
debits are one conditional UPDATE (never a read-then-write), wallet credits one upsert,
and the idempotency key is claimed by the transfer row's unique index.
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.kernel.unit_of_work import Retry
from gateway.ledger.records import (
    EnrolmentRecord,
    LegRecord,
    MemberRecord,
    TransferRecord,
    WalletRecord,
)
from gateway.ledger.rules import SYSTEM_ACCOUNTS, AccountCode, Leg
from gateway.ledger.tables import accounts, enrolments, entries, members, obligations, transfers


class Overdraft(Exception):
    """A wallet debit found fewer points than it needed; the transaction must roll back."""

    def __init__(self, pool: str, needed: int, available: int) -> None:
        super().__init__(f"{pool}: needed {needed}, available {available}")
        self.pool = pool
        self.needed = needed
        self.available = available


def _insert(connection: AsyncConnection, table: sa.Table) -> Any:
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


class _Statements:
    """The posting path's statements, built once per dialect and bound per call."""

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
        self.transfer_by_key = sa.select(transfers).where(
            transfers.c.idempotency_scope == sa.bindparam("scope"),
            transfers.c.idempotency_key == sa.bindparam("key"),
        )
        self.enrolment = sa.select(enrolments).where(
            enrolments.c.partner == sa.bindparam("partner"),
            enrolments.c.customer_id == sa.bindparam("customer_id"),
        )


_STATEMENTS: dict[str, _Statements] = {}


def _statements(connection: AsyncConnection) -> _Statements:
    name = connection.dialect.name
    if name not in _STATEMENTS:
        _STATEMENTS[name] = _Statements(name)
    return _STATEMENTS[name]


async def ensure_system_accounts(
    connection: AsyncConnection, pools: Iterable[str]
) -> dict[tuple[str, AccountCode], int]:
    rows = [
        {"pool": pool, "code": code.value, "balance": 0}
        for pool in pools
        for code in SYSTEM_ACCOUNTS
    ]
    if rows:
        statement = _insert(connection, accounts).on_conflict_do_nothing(
            index_elements=["pool", "code"], index_where=accounts.c.member_id.is_(None)
        )
        await connection.execute(statement, rows)
    result = await connection.execute(
        sa.select(accounts.c.id, accounts.c.pool, accounts.c.code).where(
            accounts.c.member_id.is_(None)
        )
    )
    return {(row.pool, AccountCode(row.code)): row.id for row in result}


# Members and enrolments


async def insert_member(connection: AsyncConnection, member_id: str, at: datetime) -> None:
    await connection.execute(sa.insert(members).values(id=member_id, created_at=at))


async def claim_enrolment(
    connection: AsyncConnection, partner: str, customer_id: str, member_id: str, at: datetime
) -> bool:
    """Insert the enrolment unless the pair exists; a racing insert waits for the first."""
    statement = (
        _insert(connection, enrolments)
        .values(partner=partner, customer_id=customer_id, member_id=member_id, created_at=at)
        .on_conflict_do_nothing(index_elements=["partner", "customer_id"])
        .returning(enrolments.c.member_id)
    )
    return (await connection.execute(statement)).first() is not None


async def enrolment(
    connection: AsyncConnection, partner: str, customer_id: str
) -> EnrolmentRecord | None:
    row = (
        await connection.execute(
            _statements(connection).enrolment, {"partner": partner, "customer_id": customer_id}
        )
    ).first()
    return (
        EnrolmentRecord(row.partner, row.customer_id, row.member_id, row.created_at)
        if row
        else None
    )


async def enrolments_of(
    connection: AsyncConnection, member_ids: Sequence[str]
) -> dict[str, list[EnrolmentRecord]]:
    found: dict[str, list[EnrolmentRecord]] = defaultdict(list)
    result = await connection.execute(
        sa.select(enrolments)
        .where(enrolments.c.member_id.in_(member_ids))
        .order_by(enrolments.c.created_at, enrolments.c.partner)
    )
    for row in result:
        found[row.member_id].append(
            EnrolmentRecord(row.partner, row.customer_id, row.member_id, row.created_at)
        )
    return found


# The member lock: the one order every transaction locks member rows in
#
# Every write that touches a member's points, identities or merge state locks the member's
# row first, through ``lock_members``, before any other row (wallets, holds, awards...):
#
# 1. it reads, without locks, which members the given ids are now (following
#    ``merged_into``) and, for a merge, which members were merged into the one retired;
# 2. it locks all those rows in one statement in ascending id order (usually the same
#    statement as 1, its subquery reading the survivors from the statement's snapshot);
# 3. it checks what it read against the locked rows: when a merge committed in between (an
#    id now names a member it did not lock), the transaction rolls back and runs again
#    (``unit_of_work.Retry``).
#
# Rows a transaction locks later (a referrer found after the purchase's member) must sort
# after those it holds to be waited for; otherwise they are taken with NOWAIT, and a busy
# row rolls the transaction back to run again. So a transaction only ever waits for member
# rows in ascending id order, and no two wait for each other.


class Lock(Enum):
    """How a member's row is locked (PostgreSQL row-lock modes; SQLite has one writer)."""

    # Evaluations that post a bonus: other postings go on, a merge waits (FOR KEY SHARE).
    SHARED = "shared"
    # Postings: one member's postings wait for each other, which the expiry job's FIFO
    # relies on, and a merge waits for them (FOR NO KEY UPDATE).
    POSTING = "posting"
    # Merges, links and unlinks: everything else on these members waits (FOR UPDATE).
    EXCLUSIVE = "exclusive"


_CHAIN_LIMIT = 8  # merges flatten chains (retire_member); this bounds a damaged one
# The member rows each open transaction holds (to tell an in-order lock from a late one).
_HELD: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def _held(connection: AsyncConnection) -> set[str]:
    """The member rows this connection's open transaction has locked so far."""
    sync = connection.sync_connection
    transaction = sync.get_transaction() if sync is not None else None
    if transaction is None:
        return set()
    return _HELD.setdefault(transaction, set())


_SEEN = members.alias("seen")  # the members as a lock statement's subquery reads them
# The usual lock statement per dialect and mode, built once (its ids bound per call).
_USUAL_LOCKS: dict[tuple[str, Lock], Any] = {}


def _lock_statement(
    connection: AsyncConnection, condition: sa.ColumnElement[bool], mode: Lock, nowait: bool
) -> Any:
    # Rows are locked in the order the statement sorts them: by code point, as Python's
    # sorted() (which decides what is "late"), whatever the database's collation.
    order = members.c.id.collate("C") if connection.dialect.name == "postgresql" else members.c.id
    statement = sa.select(members.c.id, members.c.merged_into).where(condition).order_by(order)
    if mode is Lock.SHARED:
        return statement.with_for_update(read=True, key_share=True, nowait=nowait, of=members)
    return statement.with_for_update(key_share=mode is Lock.POSTING, nowait=nowait, of=members)


async def _merged_into_rows(connection: AsyncConnection, ids: Iterable[str]) -> dict[str, Any]:
    result = await connection.execute(
        sa.select(members.c.id, members.c.merged_into).where(members.c.id.in_(list(ids)))
    )
    return {str(row.id): row.merged_into for row in result}


def _live_of(member_id: str, merged: dict[str, Any]) -> str | None:
    """Where ``member_id``'s chain of merges ends; None when it leaves ``merged``."""
    current = member_id
    for _ in range(_CHAIN_LIMIT):
        if current not in merged:
            return None
        survivor = merged[current]
        if survivor is None:
            return current
        current = str(survivor)
    return None


async def _absorbed(connection: AsyncConnection, retiring: Sequence[str]) -> set[str]:
    if not retiring:
        return set()
    result = await connection.execute(
        sa.select(members.c.id).where(members.c.merged_into.in_(list(retiring)))
    )
    return {str(row.id) for row in result}


async def lock_members(
    connection: AsyncConnection,
    member_ids: Sequence[str],
    mode: Lock = Lock.POSTING,
    retiring: Sequence[str] = (),
) -> dict[str, str]:
    """Lock the rows of the members ``member_ids`` name now, and the ids' own rows, in the
    one order (see above). ``retiring``: members a merge is about to retire; the rows of the
    members merged into them are locked too (the merge rewrites them), and a retiring member
    that was merged meanwhile makes the work run again. Returns each known given id's member
    now (itself or its survivor); unknown ids are left out."""
    held = _held(connection)
    if not held and not retiring:
        # The usual case, in one statement: the rows and their survivors' (read from the
        # statement's snapshot), locked in order. Nothing held yet, so nothing is late.
        statement = _USUAL_LOCKS.get((connection.dialect.name, mode))
        if statement is None:
            if connection.dialect.name == "postgresql":  # an array: no IN list rendered per call
                ids = sa.bindparam("ids", type_=postgresql.ARRAY(sa.String))
                survivors = sa.select(_SEEN.c.merged_into).where(_SEEN.c.id == sa.any_(ids))
                wanted_rows = sa.or_(members.c.id == sa.any_(ids), members.c.id.in_(survivors))
            else:
                ids = sa.bindparam("ids", expanding=True)
                survivors = sa.select(_SEEN.c.merged_into).where(_SEEN.c.id.in_(ids))
                wanted_rows = sa.or_(members.c.id.in_(ids), members.c.id.in_(survivors))
            statement = _lock_statement(connection, wanted_rows, mode, False)
            _USUAL_LOCKS[(connection.dialect.name, mode)] = statement
        result = await connection.execute(statement, {"ids": list(member_ids)})
    else:
        # 1. Without locks: the rows involved.
        merged = await _merged_into_rows(connection, [*member_ids, *retiring])
        for _ in range(_CHAIN_LIMIT):
            missing = {str(s) for s in merged.values() if s is not None and str(s) not in merged}
            if not missing:
                break
            merged.update(await _merged_into_rows(connection, missing))
        wanted = set(merged) | await _absorbed(connection, retiring)
        if not wanted:
            return {}
        # 2. Locked, in ascending id order (or without waiting, when out of it).
        new = wanted - held
        late = bool(held and new and min(new) < max(held))
        condition = members.c.id.in_(sorted(wanted))
        result = await connection.execute(_lock_statement(connection, condition, mode, late))
    locked = {str(row.id): row.merged_into for row in result}
    held.update(locked)
    # 3. Checked: a merge that committed between 1 and 2 shows here.
    live = {}
    for member_id in member_ids:
        if member_id not in locked:
            continue  # unknown
        survivor = _live_of(member_id, locked)
        if survivor is None:
            raise Retry  # merged into a member not locked: lock the new chain
        live[member_id] = survivor
    if any(locked.get(r) is not None for r in retiring):
        raise Retry  # a retiring member was merged meanwhile: the caller decides again
    if not await _absorbed(connection, retiring) <= set(locked):
        raise Retry  # another member was merged into a retiring one meanwhile
    return live


async def members_by_id(
    connection: AsyncConnection, member_ids: Sequence[str]
) -> dict[str, MemberRecord]:
    """Each id's member; a member merged into another gives the surviving member."""
    rows = {
        row.id: row
        for row in await connection.execute(sa.select(members).where(members.c.id.in_(member_ids)))
    }
    survivors = {row.merged_into for row in rows.values() if row.merged_into is not None}
    if survivors:
        result = await connection.execute(sa.select(members).where(members.c.id.in_(survivors)))
        rows.update({row.id: row for row in result})
    found = {}
    for member_id in member_ids:
        row = rows.get(member_id)
        if row is not None and row.merged_into is not None:
            row = rows.get(row.merged_into)
        if row is not None:
            found[member_id] = MemberRecord(row.id, row.created_at)
    return found


async def live_member(
    connection: AsyncConnection, member_id: str, mode: Lock = Lock.POSTING
) -> str | None:
    """The member that ``member_id`` is now (itself or its survivor), locked with
    ``lock_members`` until the transaction ends; None for an unknown id."""
    return (await lock_members(connection, [member_id], mode)).get(member_id)


async def merged_into(connection: AsyncConnection, member_id: str) -> list[str]:
    """The ids of members merged into ``member_id``."""
    result = await connection.execute(
        sa.select(members.c.id).where(members.c.merged_into == member_id)
    )
    return [str(row.id) for row in result]


# Wallets


async def wallets_of(
    connection: AsyncConnection, member_ids: Sequence[str]
) -> dict[str, list[WalletRecord]]:
    found: dict[str, list[WalletRecord]] = defaultdict(list)
    result = await connection.execute(
        sa.select(accounts.c.member_id, accounts.c.pool, accounts.c.balance)
        .where(accounts.c.member_id.in_(member_ids))
        .order_by(accounts.c.pool)
    )
    for row in result:
        found[row.member_id].append(WalletRecord(row.member_id, row.pool, row.balance))
    return found


async def wallet_balance(connection: AsyncConnection, member_id: str, pool: str) -> int:
    balance = await connection.scalar(
        sa.select(accounts.c.balance).where(
            accounts.c.member_id == member_id, accounts.c.pool == pool
        )
    )
    return int(balance or 0)


async def _credit_wallet(
    connection: AsyncConnection, member_id: str, pool: str, points: int
) -> tuple[int, int]:
    parameters = {"pool": pool, "member_id": member_id, "points": points}
    row = (await connection.execute(_statements(connection).credit_wallet, parameters)).one()
    return row.id, row.balance


async def _debit_wallet(
    connection: AsyncConnection, member_id: str, pool: str, points: int
) -> tuple[int, int]:
    parameters = {"member": member_id, "wallet_pool": pool, "points": points}
    row = (await connection.execute(_statements(connection).debit_wallet, parameters)).first()
    if row is None:
        raise Overdraft(pool, points, await wallet_balance(connection, member_id, pool))
    return row.id, row.balance


# Transfers


async def claim_transfer(connection: AsyncConnection, values: dict[str, Any]) -> int | None:
    """Insert a transfer; None when its idempotency key is taken (after the taker commits)."""
    transfer_id = (
        await connection.execute(_statements(connection).claim_transfer, values)
    ).scalar()
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
    await connection.execute(_statements(connection).insert_entries, rows)
    return records


async def transfer_by_key(
    connection: AsyncConnection, scope: str, key: str
) -> tuple[TransferRecord, str] | None:
    statement = _statements(connection).transfer_by_key
    row = (await connection.execute(statement, {"scope": scope, "key": key})).first()
    return (TransferRecord.from_row(row), row.request_hash) if row else None


async def transfers_by_id(
    connection: AsyncConnection, transfer_ids: Sequence[int]
) -> dict[int, TransferRecord]:
    result = await connection.execute(sa.select(transfers).where(transfers.c.id.in_(transfer_ids)))
    return {row.id: TransferRecord.from_row(row) for row in result}


async def legs_of(
    connection: AsyncConnection, transfer_ids: Sequence[int]
) -> dict[int, list[LegRecord]]:
    found: dict[int, list[LegRecord]] = defaultdict(list)
    result = await connection.execute(
        sa.select(
            entries.c.transfer_id,
            entries.c.pool,
            accounts.c.code,
            entries.c.member_id,
            entries.c.amount,
            entries.c.balance_after,
        )
        .join(accounts, accounts.c.id == entries.c.account_id)
        .where(entries.c.transfer_id.in_(transfer_ids))
        .order_by(entries.c.id)
    )
    for row in result:
        found[row.transfer_id].append(
            LegRecord(
                row.transfer_id,
                row.pool,
                AccountCode(row.code),
                row.member_id,
                row.amount,
                row.balance_after,
            )
        )
    return found


async def member_history(
    connection: AsyncConnection,
    member_ids: Sequence[str],
    pool: str | None,
    before: int | None,
    limit: int,
) -> list[TransferRecord]:
    """The members' transfers (a member and those merged into it), newest first, by
    keyset on the transfer id."""
    touching = sa.select(entries.c.transfer_id.label("id")).where(
        entries.c.member_id.in_(member_ids)
    )
    # Some transfers never touch the member's wallet (a capture in full moves held points
    # to redemption): they are the member's by the transfer's own member.
    own = sa.select(transfers.c.id.label("id")).where(transfers.c.member_id.in_(member_ids))
    if pool is not None:
        touching = touching.where(entries.c.pool == pool)
        own = own.where(sa.or_(transfers.c.partner == pool, transfers.c.to_partner == pool))
    if before is not None:
        touching = touching.where(entries.c.transfer_id < before)
        own = own.where(transfers.c.id < before)
    # Each side limited on its own (in a subquery, as SQLite wants), then merged.
    by_entries = touching.order_by(entries.c.transfer_id.desc()).limit(limit).subquery()
    by_transfer = own.order_by(transfers.c.id.desc()).limit(limit).subquery()
    newest = sa.union(sa.select(by_entries.c.id), sa.select(by_transfer.c.id)).subquery()
    ids = sa.select(newest.c.id).order_by(newest.c.id.desc()).limit(limit)
    result = await connection.execute(
        sa.select(transfers).where(transfers.c.id.in_(ids)).order_by(transfers.c.id.desc())
    )
    return [TransferRecord.from_row(row) for row in result]


async def pool_figures(connection: AsyncConnection, pool: str) -> dict[str, int]:
    """Totals of a pool's system accounts (derived from entries) and of its wallets."""
    result = await connection.execute(
        sa.select(accounts.c.code, sa.func.coalesce(sa.func.sum(entries.c.amount), 0))
        .join(accounts, accounts.c.id == entries.c.account_id)
        .where(entries.c.pool == pool, accounts.c.member_id.is_(None))
        .group_by(accounts.c.code)
    )
    figures = {str(code): int(total) for code, total in result}
    wallets = (
        await connection.execute(
            sa.select(
                sa.func.coalesce(sa.func.sum(accounts.c.balance), 0),
                sa.func.count().filter(accounts.c.balance > 0),
            ).where(accounts.c.pool == pool, accounts.c.member_id.isnot(None))
        )
    ).one()
    figures["outstanding"] = int(wallets[0])
    figures["holders"] = int(wallets[1])
    return figures


async def spent_since(
    connection: AsyncConnection,
    member_ids: Sequence[str],
    pool: str,
    since: datetime,
    retry_of: Sequence[tuple[str, str]],
) -> int:
    """Points the members redeemed, converted, held or gifted out of ``pool`` since ``since``,
    leaving out the transfers a retry would answer with (``retry_of``: scopes and keys)."""
    total = await connection.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(transfers.c.points), 0)).where(
            transfers.c.member_id.in_(member_ids),
            transfers.c.partner == pool,
            transfers.c.kind.in_(["redeem", "conversion", "hold", "gift"]),
            transfers.c.created_at >= since,
            *(
                sa.not_(
                    sa.and_(
                        transfers.c.idempotency_scope == scope,
                        transfers.c.idempotency_key == key,
                    )
                )
                for scope, key in retry_of
            ),
        )
    )
    return int(total or 0)


async def insert_obligation(connection: AsyncConnection, values: dict[str, Any]) -> None:
    await connection.execute(sa.insert(obligations).values(**values))
