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


# Who can sign in at each demo partner's development provider: subject, name, customer id.
# Alice is SKY-1001 at SkyWay and BB-2002 at BrewBar: linking the two merges her members.
DEMO_SIGN_INS = {
    "skyway": (("alice", "Alice Martin", "SKY-1001"),),
    "brewbar": (("alice", "Alice Martin", "BB-2002"),),
    "freshmart": (("carol", "Carol Jansen", "FM-3003"),),
}
DEMO_OPERATOR = "olivia"  # signs in at the coalition's provider with the operator role


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
