"""Imports' side of data rights (gateway.privacy): a rejected line of an imported file
names no member, but its key may be the receipt a corrected line later earned with; an
erasure clears those keys (the line number, code and message stay)."""

from __future__ import annotations

from collections.abc import Mapping, Set

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.imports.tables import import_rejections, imports

CHUNK = 500  # keys per statement


async def clear_rejected_keys(connection: AsyncConnection, keys: Mapping[str, Set[str]]) -> None:
    """Clear the keys of rejected lines that are among ``keys`` (per partner)."""
    for partner, found in keys.items():
        ordered = sorted(found)
        for start in range(0, len(ordered), CHUNK):
            of_partner = sa.select(imports.c.id).where(imports.c.partner == partner)
            await connection.execute(
                sa.update(import_rejections)
                .where(
                    import_rejections.c.import_id.in_(of_partner),
                    import_rejections.c.idempotency_key.in_(ordered[start : start + CHUNK]),
                )
                .values(idempotency_key=None)
            )
