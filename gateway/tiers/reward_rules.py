"""What the coalition's tiers decide about rewards: which tier a tier-upgrade reward gives,
who may redeem a reward with a lowest tier, and the checks on a reward's tier settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.kernel.errors import DomainError, ErrorCode, shown
from gateway.kernel.validation import invalid
from partners.config.tiers import Tier, Tiers

if TYPE_CHECKING:
    from gateway.tiers.service import TierStatus

UPGRADE_KIND = "tier_upgrade"  # RewardKind.TIER_UPGRADE's value (rewards imports the tiers)


@dataclass(frozen=True)
class RewardTiers:
    """A reward's settings that concern tiers: its kind, a tier upgrade's tier and the
    lowest tier that may redeem it (slugs)."""

    kind: str
    tier: str | None
    min_tier: str | None


def needs_tier(tiers: Tiers | None, settings: RewardTiers) -> bool:
    """Whether the member's tier decides if they may redeem such a reward."""
    return settings.min_tier is not None or (tiers is not None and settings.kind == UPGRADE_KIND)


def upgrade_target(tiers: Tiers, status: TierStatus, tier: str | None) -> Tier | None:
    """The tier an upgrade to ``tier`` (None: the next one up) gives a member in ``status``;
    None when it would not help them: a tier below theirs, or their own tier unless they are
    in the grace after a missed review (buying it then keeps it)."""
    target = tiers.tier(tier) if tier else tiers.above(status.tier)
    if target is None or target.rank < status.tier.rank:
        return None
    if target.rank == status.tier.rank and status.downgrade_at is None:
        return None
    return target


def tier_refusal(
    tiers: Tiers | None, status: TierStatus | None, settings: RewardTiers
) -> DomainError | None:
    """Why a member in ``status`` may not redeem a reward with these settings (None: they
    may). ``status`` is needed when ``needs_tier``. A floor refuses a member below it
    (TIER_REQUIRED); an upgrade that would not raise the tier is REWARD_UNAVAILABLE, and so
    is a reward naming a tier no longer configured. Without tiers in the configuration a
    tier upgrade is recorded and gives nothing."""
    if not needs_tier(tiers, settings):
        return None
    floor = tiers.tier(settings.min_tier) if tiers and settings.min_tier else None
    named = tiers.tier(settings.tier) if tiers and settings.tier else None
    if tiers is None or (settings.min_tier and floor is None) or (settings.tier and named is None):
        return DomainError(
            ErrorCode.REWARD_UNAVAILABLE,
            "This reward names a tier the coalition no longer has.",
            ("reward_id",),
        )
    assert status is not None
    if floor is not None and status.tier.rank < floor.rank:
        return DomainError(
            ErrorCode.TIER_REQUIRED,
            f"This reward is for members in the {floor.name} tier or above; you are in "
            f"{status.tier.name}.",
            ("reward_id",),
        )
    if settings.kind == UPGRADE_KIND and upgrade_target(tiers, status, settings.tier) is None:
        return DomainError(
            ErrorCode.REWARD_UNAVAILABLE,
            f"You are already in the {status.tier.name} tier; this upgrade would not raise it.",
            ("reward_id",),
        )
    return None


def check_reward_tiers(tiers: Tiers | None, reward: Mapping[str, Any]) -> None:
    """A reward's ``tier`` and ``min_tier`` (slugs) as a partner sets them: known tiers, a
    ``tier`` only on a tier upgrade and above the first tier."""
    for name in ("tier", "min_tier"):
        slug = reward.get(name)
        if slug is None:
            continue
        if tiers is None:
            raise DomainError(
                ErrorCode.UNKNOWN_TIER, "The coalition has no tiers configured.", (name,)
            )
        if tiers.tier(slug) is None:
            known = ", ".join(tier.slug for tier in tiers.levels)
            raise DomainError(
                ErrorCode.UNKNOWN_TIER, f"No tier {shown(slug)}; the tiers are {known}.", (name,)
            )
    tier = reward.get("tier")
    if tier is not None and reward.get("kind") != UPGRADE_KIND:
        raise invalid("tier", "Only a tier upgrade (kind TIER_UPGRADE) gives a tier.")
    if tier is not None and tiers is not None and tier == tiers.base.slug:
        raise invalid("tier", "The first tier is everyone's: a tier upgrade gives a higher one.")
