"""The domain event recording a ledger transfer (its shape: ``gateway.events.event``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.events import types
from gateway.events.event import NewEvent
from gateway.ledger.records import TransferRecord


def posted(transfer: TransferRecord, extra: Mapping[str, Any] | None = None) -> NewEvent:
    """The event recording a ledger transfer; ``extra`` adds to its data (e.g. what a
    reversal reverses)."""
    data: dict[str, Any] = {"kind": transfer.kind.value}
    if transfer.reason is not None:
        data["reason"] = transfer.reason
    if transfer.to_partner is not None:
        data["to_partner"] = transfer.to_partner
    if transfer.received_points is not None:
        data["received_points"] = transfer.received_points
    if transfer.fee is not None:
        data["fee"] = transfer.fee
    if transfer.rate is not None:
        data["rate"] = str(transfer.rate)
    if transfer.purchase_amount is not None:
        data["purchase_amount"] = str(transfer.purchase_amount)
    if transfer.reverses_id is not None:
        data["reverses_id"] = transfer.reverses_id
    if extra:
        data.update(extra)
    return NewEvent(
        type=types.BY_TRANSFER_KIND[transfer.kind.value],
        occurred_at=transfer.created_at,
        member_id=transfer.member_id,
        partner=transfer.partner,
        transfer_id=transfer.id,
        points=transfer.points,
        data=data,
    )
