"""The member's dashboard: one query for everything a partner app or the coalition's page
shows a member."""

from __future__ import annotations

from datetime import datetime, timedelta

import strawberry

from gateway.api.graphql.context import Info
from gateway.api.graphql.errors import ArgumentError
from gateway.api.graphql.members import Member
from gateway.api.graphql.partner_types import Partner
from gateway.api.graphql.rewards import MAX_CATALOGUE, Reward
from gateway.api.graphql.scalars import Int64, decode_member_id
from gateway.api.graphql.types import Transfer
from gateway.dashboard.service import partner_usage, suggest
from gateway.expiry.service import ExpiryService

USAGE_WINDOW = timedelta(days=180)
EXPIRY_HORIZON = timedelta(days=90)
MAX_SUGGESTIONS = 50


@strawberry.type(description="A reward the member can pay for now, and how.")
class SuggestedReward:
    reward: Reward
    pay_with: Partner = strawberry.field(description="The pool it would be paid from.")
    cost: Int64 = strawberry.field(description="Points of that pool, conversion included.")
    share_of_balance: float = strawberry.field(
        description="The cost as a share of that pool's balance (1.0: all of it)."
    )


@strawberry.type(description="Points of one pool that expire at one moment.")
class ExpiringSoon:
    partner: Partner
    points: Int64
    expires_at: datetime


@strawberry.type(
    description="Everything to show a member at once. `member` carries balances per pool "
    "(held, pending, owed, value, what expires when), the total, tier and progress, badges "
    "and challenges; the other fields add what is ranked for them. A partner's app sees "
    "only its own pool."
)
class Dashboard:
    member: Member
    recent_activity: list[Transfer] = strawberry.field(
        description="The latest transfers, newest first."
    )
    expiring_soon: list[ExpiringSoon] = strawberry.field(
        description="Points that expire in the next 90 days, soonest first."
    )
    suggested_rewards: list[SuggestedReward] = strawberry.field(
        description="Rewards payable now, most interesting first: those of the partners the "
        "member used most in the last 180 days, then those closest to the balance they use."
    )


@strawberry.type
class DashboardQueries:
    @strawberry.field(description="A member's dashboard in one query.")
    async def dashboard(
        self, info: Info, member_id: strawberry.ID, activity: int = 10, suggestions: int = 10
    ) -> Dashboard | None:
        if not 0 <= activity <= 100 or not 0 <= suggestions <= MAX_SUGGESTIONS:
            raise ArgumentError(
                f"`activity` is at most 100 and `suggestions` at most {MAX_SUGGESTIONS}."
            )
        context = info.context
        found = decode_member_id(str(member_id))
        record = await context.loaders.members.load(found) if found else None
        if record is None or not await context.sees_member(record.id):
            return None
        service, access = context.service, context.access
        now = service.clock()
        history = await service.history(record.id, access.partner, None, activity)
        visible = [t for t in history if await context.sees_transfer(t)]
        wallets = {
            w.pool: w.balance
            for w in await context.loaders.wallets.load(record.id)
            if access.sees_pool(w.pool)
        }
        usage = await partner_usage(service, record.id, now - USAGE_WINDOW)
        catalogue = await context.rewards.catalogue(None, None, False, MAX_CATALOGUE)
        catalogue = await context.rewards.redeemable(record.id, catalogue)
        picked = suggest(context.rewards, catalogue, wallets, usage, now, suggestions)
        expiry = ExpiryService(service)
        soon = []
        for pool in sorted(wallets):
            for item in await expiry.upcoming(record.id, pool):
                if item.expires_at <= now + EXPIRY_HORIZON:
                    soon.append(
                        ExpiringSoon(
                            partner=Partner.of(info, pool),
                            points=item.points,
                            expires_at=item.expires_at,
                        )
                    )
        soon.sort(key=lambda item: item.expires_at)
        return Dashboard(
            member=Member.of(record),
            recent_activity=[Transfer.of(t) for t in visible],
            expiring_soon=soon,
            suggested_rewards=[
                SuggestedReward(
                    reward=Reward.of(s.reward),
                    pay_with=Partner.of(info, s.pay_with),
                    cost=s.cost,
                    share_of_balance=s.cost / s.balance,
                )
                for s in picked
            ],
        )
