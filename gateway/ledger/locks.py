"""The member lock: the one order every transaction locks member rows in."""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.kernel.errors import DomainError, ErrorCode
from gateway.kernel.unit_of_work import Retry
from gateway.ledger.tables import members

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
# The member rows each open transaction holds (to tell an in-order lock from a late one),
# and those of them whose personal data was erased (gateway.privacy).
_HELD: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
_ERASED: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def _of_transaction(
    connection: AsyncConnection, found: weakref.WeakKeyDictionary[Any, set[str]]
) -> set[str]:
    sync = connection.sync_connection
    transaction = sync.get_transaction() if sync is not None else None
    if transaction is None:
        return set()
    return found.setdefault(transaction, set())


def _held(connection: AsyncConnection) -> set[str]:
    """The member rows this connection's open transaction has locked so far."""
    return _of_transaction(connection, _HELD)


def check_not_erased(connection: AsyncConnection, member_id: str, field: tuple[str, ...]) -> None:
    """MEMBER_ERASED (naming ``field``) if ``member_id``, locked by this transaction, was
    erased: nothing more is done for an erased member."""
    if member_id in erased(connection):
        raise DomainError(
            ErrorCode.MEMBER_ERASED,
            "This member's personal data was erased: nothing more can be done for them.",
            field,
        )


def erased(connection: AsyncConnection) -> set[str]:
    """Of the members this connection's open transaction has locked so far, those whose
    personal data was erased: work on many members at once (a batch of earns, badges)
    leaves them out instead of refusing them all (``refuse_erased``)."""
    return _of_transaction(connection, _ERASED)


_SEEN = members.alias("seen")  # the members as a lock statement's subquery reads them
# The usual lock statement per dialect and mode, built once (its ids bound per call).
_USUAL_LOCKS: dict[tuple[str, Lock], Any] = {}


def _lock_statement(
    connection: AsyncConnection, condition: sa.ColumnElement[bool], mode: Lock, nowait: bool
) -> Any:
    # Rows are locked in the order the statement sorts them: by code point, as Python's
    # sorted() (which decides what is "late"), whatever the database's collation.
    order = members.c.id.collate("C") if connection.dialect.name == "postgresql" else members.c.id
    statement = (
        sa.select(members.c.id, members.c.merged_into, members.c.erased_at)
        .where(condition)
        .order_by(order)
    )
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
    refuse_erased: bool = False,
) -> dict[str, str]:
    """Lock the rows of the members ``member_ids`` name now, and the ids' own rows, in the
    one order (see above). ``retiring``: members a merge is about to retire; the rows of the
    members merged into them are locked too (the merge rewrites them), and a retiring member
    that was merged meanwhile makes the work run again. Returns each known given id's member
    now (itself or its survivor); unknown ids are left out. ``refuse_erased``: a member
    whose personal data was erased is refused (MEMBER_ERASED)."""
    held = _held(connection)
    if not held and not retiring:
        # The usual case, in one statement: the rows and their survivors' (read from the
        # statement's snapshot), locked in order. Nothing held yet, so nothing is late.
        statement = _USUAL_LOCKS.get((connection.dialect.name, mode))
        if statement is None:
            if connection.dialect.name == "postgresql":  # an array: no IN list rendered per call
                ids = sa.bindparam("ids", type_=postgresql.ARRAY(sa.String))
                # One IN over the ids and their survivors, the ids joined as rows: not
                # "= ANY(ids) OR IN (...)", which PostgreSQL can only plan as a scan of
                # every member, each row tested against every id.
                given = sa.func.unnest(ids).table_valued("id").render_derived(name="given")
                survivors = sa.select(_SEEN.c.merged_into).join(given, _SEEN.c.id == given.c.id)
                wanted_rows = members.c.id.in_(sa.union_all(sa.select(given.c.id), survivors))
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
    rows = result.all()
    locked = {str(row.id): row.merged_into for row in rows}
    gone = {str(row.id) for row in rows if row.erased_at is not None}
    held.update(locked)
    if gone:
        erased(connection).update(gone)
    # 3. Checked: a merge that committed between 1 and 2 shows here.
    live = {}
    for member_id in member_ids:
        if member_id not in locked:
            continue  # unknown
        survivor = _live_of(member_id, locked)
        if survivor is None:
            raise Retry  # merged into a member not locked: lock the new chain
        live[member_id] = survivor
    if refuse_erased:
        for member in live.values():
            check_not_erased(connection, member, ("member", "id"))
    if any(locked.get(r) is not None for r in retiring):
        raise Retry  # a retiring member was merged meanwhile: the caller decides again
    if not await _absorbed(connection, retiring) <= set(locked):
        raise Retry  # another member was merged into a retiring one meanwhile
    return live


async def live_member(
    connection: AsyncConnection,
    member_id: str,
    mode: Lock = Lock.POSTING,
    refuse_erased: bool = False,
) -> str | None:
    """The member that ``member_id`` is now (itself or its survivor), locked with
    ``lock_members`` until the transaction ends; None for an unknown id."""
    found = await lock_members(connection, [member_id], mode, refuse_erased=refuse_erased)
    return found.get(member_id)
