"""Demo members for the embedded quick start. Loading twice changes nothing."""

from __future__ import annotations

from decimal import Decimal

from gateway.ledger.records import MemberRef
from gateway.ledger.service import LedgerService
from gateway.rewards.catalogue import RewardDraft
from gateway.rewards.service import RewardService

DEMO_MEMBERS = (
    # partner, customer id, what they earned
    ("skyway", "SKY-1001", Decimal("420.00"), "Flight AMS-LIS"),
    ("brewbar", "BB-2002", Decimal("36.50"), "Coffee and cake, March"),
    ("freshmart", "FM-3003", Decimal("212.35"), "Weekly groceries"),
)


# Members of the demo's remote pools as the partner's own system knows them: customer id
# and balance there, before the gateway moves anything. Only these can be enrolled there;
# HH-4010 is a guest not enrolled in the coalition yet.
DEMO_REMOTE_MEMBERS: dict[str, dict[str, int]] = {"harbour": {"HH-4004": 12000, "HH-4010": 3000}}
DEMO_REMOTE_ENROLMENTS = (("harbour", "HH-4004"),)  # Carol, a hotel guest too


# Who can sign in at each demo partner's development provider: subject, name, customer id.
# Alice is SKY-1001 at SkyWay and BB-2002 at BrewBar: linking the two merges her members.
DEMO_SIGN_INS = {
    "skyway": (("alice", "Alice Martin", "SKY-1001"),),
    "brewbar": (("alice", "Alice Martin", "BB-2002"),),
    "freshmart": (("carol", "Carol Jansen", "FM-3003"),),
    "harbour": (("carol", "Carol Jansen", "HH-4004"),),
}
DEMO_OPERATOR = "olivia"  # signs in at the coalition's provider with the operator role


async def load_demo(service: LedgerService) -> None:
    for partner, customer_id in DEMO_REMOTE_ENROLMENTS:
        if partner in service.coalition.partners:
            await service.enrol(partner, customer_id)
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


# Rewards at every brand: partner, kind, name, price in its points, value in EUR, extras.
DEMO_REWARDS: tuple[tuple[str, str, str, int, str, dict[str, object]], ...] = (
    ("skyway", "experience", "Lounge access", 3000, "25.00", {"stock": 50}),
    ("skyway", "free_product", "Seat upgrade", 1500, "12.00", {}),
    ("brewbar", "free_product", "Free cappuccino", 60, "2.80", {}),
    ("brewbar", "discount", "10% off a bag of beans", 40, "1.50", {"per_member_limit": 2}),
    ("freshmart", "gift_card", "EUR 5 gift card", 1000, "5.00", {}),
    ("harbour", "free_product", "Late checkout", 1500, "12.00", {}),
    ("harbour", "experience", "Spa evening for two", 9000, "70.00", {"stock": 20}),
    (
        "freshmart",
        "donation",
        "A meal for the food bank",
        400,
        "2.00",
        {"charity": "Voedselbank Amsterdam"},
    ),
)


async def load_demo_rewards(rewards: RewardService) -> None:
    """Publish the demo rewards once (by partner and name)."""
    present = {(r.partner, r.name) for r in await rewards.catalogue(None, None, True, 1000)}
    for partner, kind, name, price, value, extras in DEMO_REWARDS:
        if partner not in rewards.ledger.coalition.partners or (partner, name) in present:
            continue
        draft = RewardDraft(
            kind=kind,
            name=name,
            price_points=price,
            value=Decimal(value),
            **extras,  # type: ignore[arg-type]
        )
        await rewards.create(partner, draft)
