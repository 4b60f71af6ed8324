"""Demo members for the embedded quick start. Loading twice changes nothing."""

from __future__ import annotations

from decimal import Decimal

from .records import MemberRef
from .service import LedgerService

DEMO_MEMBERS = (
    # partner, customer id, what they earned
    ("skyway", "SKY-1001", Decimal("420.00"), "Flight AMS-LIS"),
    ("brewbar", "BB-2002", Decimal("36.50"), "Coffee and cake, March"),
    ("freshmart", "FM-3003", Decimal("212.35"), "Weekly groceries"),
)


async def load_demo(service: LedgerService) -> None:
    for partner, customer_id, amount, reason in DEMO_MEMBERS:
        if partner not in service.coalition.partners:
            continue
        await service.enrol(partner, customer_id)
        await service.earn(
            partner,
            MemberRef(partner=partner, customer_id=customer_id),
            f"demo-{customer_id}",
            purchase_amount=amount,
            reason=reason,
        )
