"""Imports' side of data rights (gateway.privacy): a rejected line of an imported file
names no member, but its key may be the receipt a corrected line later earned with, and
its message may quote a customer id (``No member is enrolled at 'x' as 'SKY-1'``) that
was enrolled later; an erasure clears those keys and replaces those quotes (the line
number and code stay). The uploaded file itself is deleted once its import has run or
failed (gateway.imports.service)."""

from __future__ import annotations

from collections.abc import Mapping, Set

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.imports.tables import import_rejections, imports
from gateway.kernel.errors import shown

CHUNK = 500  # keys per statement
ERASED = shown("erased")  # what replaces a quoted personal value in a message


def _of(partner: str) -> sa.Select[tuple[int]]:
    return sa.select(imports.c.id).where(imports.c.partner == partner)


async def clear_rejected_keys(connection: AsyncConnection, keys: Mapping[str, Set[str]]) -> None:
    """Clear the keys of rejected lines that are among ``keys`` (per partner), and their
    quotes in those lines' messages."""
    t = import_rejections
    for partner, found in keys.items():
        ordered = sorted(found)
        for start in range(0, len(ordered), CHUNK):
            rows = await connection.execute(
                sa.select(t.c.import_id, t.c.line_number, t.c.idempotency_key, t.c.message).where(
                    t.c.import_id.in_(_of(partner)),
                    t.c.idempotency_key.in_(ordered[start : start + CHUNK]),
                )
            )
            for row in rows.all():
                message = str(row.message).replace(shown(str(row.idempotency_key)), ERASED)
                await connection.execute(
                    sa.update(t)
                    .where(t.c.import_id == row.import_id, t.c.line_number == row.line_number)
                    .values(idempotency_key=None, message=message)
                )


async def scrub_messages(connection: AsyncConnection, partner: str, values: Set[str]) -> None:
    """Replace the quotes of ``values`` (customer ids, keys) in the messages of the
    partner's imports' rejected lines."""
    for value in sorted(values):
        quoted = shown(value)
        await connection.execute(
            sa.update(import_rejections)
            .where(
                import_rejections.c.import_id.in_(_of(partner)),
                import_rejections.c.message.contains(quoted, autoescape=True),
            )
            .values(message=sa.func.replace(import_rejections.c.message, quoted, ERASED))
        )
