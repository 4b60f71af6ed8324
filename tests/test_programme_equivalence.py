"""Tiers and challenges kept running in each posting's transaction give what the old
rescan of history gave (``tests/programme_oracle.py``), on random sequences of enrolments,
earns at several partners (points and purchases, whose tier multiplier depends on the
running value), reversals in full and in part, returns (clawbacks), merges, the review job
and the badge sweep, with time steps across tier windows and challenge periods.

After every step, for every member: the tier, its since / review / downgrade dates and the
qualifying value equal the rules applied to the rescanned value (the oracle stores its own
state at the same moments the gateway reads a status), and every challenge's progress equals
the rescanned count. Every badge the ``challenges.awards`` consumer gives (run after each
earn, enrolment and merge) is what the rescan found due then, with the same count; the
sweep gives what is left due.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from gateway.api import jobs as wiring
from gateway.challenges.definitions import ChallengeDraft
from gateway.challenges.service import ChallengeService
from gateway.challenges.tables import challenge_awards
from gateway.earning.observer import observe_programme
from gateway.earning.rules import Line
from gateway.earning.service import EarningService
from gateway.jobs.runner import JobRunner
from gateway.kernel.database import create_engine, migrate
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.ledger.records import MemberRef
from gateway.ledger.service import LedgerService
from gateway.members.identity import IdentityService
from gateway.members.records import Proof
from gateway.tiers.rules import TierState, advance, initial, tier_of
from gateway.tiers.service import TierService
from partners.config.coalition import DEMO_DIRECTORY, load_coalition
from tests import programme_oracle as oracle
from tests.conftest import Clock, _truncate

COALITION = load_coalition(DEMO_DIRECTORY)
TIERS = COALITION.tiers
assert TIERS is not None
PARTNERS = sorted(slug for slug, partner in COALITION.partners.items() if partner.pool.hosted)
partners = st.sampled_from(PARTNERS)
# Silver is 25 EUR: 2,084 miles or 625 stars; gold 100 EUR.
points = st.integers(min_value=1, max_value=6000)


class ProgrammeMachine(RuleBasedStateMachine):
    members = Bundle("members")
    transfers = Bundle("transfers")

    def __init__(self, url: str) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = Clock()
        self.keys = itertools.count()
        self.enrolled: dict[str, tuple[str, str]] = {}
        self.survivor: dict[str, str] = {}
        self.states: dict[str, TierState] = {}  # the oracle's stored tiers
        self.purchases: list[tuple[str, str, Decimal]] = []
        self.service = self.run(self._start(url))
        self.tiers = TierService(self.service)
        self.programme = EarningService(self.service, self.tiers)
        self.challenges = ChallengeService(self.service)
        self.identity = IdentityService(self.service, self.clock)
        self.runner = JobRunner(self.service.uow, wiring.consumers(self.service))
        start = self.clock.now
        for draft in (
            # A week's points at one partner, counting only from a moment inside the week.
            ChallengeDraft(
                slug="mart-week",
                name="Market week",
                kind="points_in_period",
                period="week",
                target=900,
                badge="Shopper",
                partner="freshmart",
                bonus_points=50,
                bonus_partner="freshmart",
                valid_from=start + timedelta(days=2, hours=3),
            ),
            ChallengeDraft(
                slug="flyer",
                name="Frequent flyer",
                kind="visits_at_partner",
                period="week",
                target=3,
                badge="Flyer",
                partner="skyway",
                bonus_points=0,
                valid_until=start + timedelta(days=60),
            ),
        ):
            self.run(self.challenges.create(None, draft))

    async def _start(self, url: str) -> LedgerService:
        if url.startswith("postgresql"):
            await _truncate(url)
        engine = create_engine(url)
        await migrate(engine)
        service = observe_programme(LedgerService(engine, COALITION, self.clock))
        await service.start()
        return service

    def teardown(self) -> None:
        self.run(self.service.engine.dispose())
        self.loop.close()

    def run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(awaitable)

    def read(self, work: Any) -> Any:
        return self.run(self.service.uow.read(work))

    def key(self) -> str:
        return f"k{next(self.keys)}"

    def live(self, member: str) -> str:
        while member in self.survivor:
            member = self.survivor[member]
        return member

    def survivors(self) -> list[str]:
        return sorted({self.live(m) for m in self.enrolled})

    # What the rescan finds due, and what the gateway awards

    def due(self, member: str) -> set[tuple[str, datetime, int]]:
        """What the old evaluation would award the member now: met, not yet awarded."""
        now = self.clock.now

        async def work(connection: Any) -> set[tuple[str, datetime, int]]:
            ids = await oracle.member_set(connection, member)
            awarded = {
                (a.challenge, a.period_start)
                for a in await self.challenges._awards(connection, ids, now)
            }
            found = set()
            for challenge in await self.challenges._running(connection):
                start = challenge.period.start(now)
                if (challenge.slug, start) in awarded:
                    continue
                count = await oracle.progress(connection, challenge, member, start)
                if count >= challenge.target:
                    found.add((challenge.slug, start, count))
            return found

        return set(self.read(work))

    def awards(self) -> set[tuple[str, str, datetime, int, bool]]:
        async def work(connection: Any) -> set[tuple[str, str, datetime, int, bool]]:
            rows = await connection.execute(sa.select(challenge_awards))
            return {
                (r.member_id, r.challenge, r.period_start, r.count, r.bonus_transfer_id is not None)
                for r in rows
            }

        return set(self.read(work))

    def award(self, member: str) -> None:
        """After an earn, an enrolment or a merge: the badges the consumer gives are those
        the rescan found due, each with its bonus (when it has one)."""
        expected = self.due(member)
        before = self.awards()
        self.run(self.runner.settle())
        given = self.awards() - before
        assert {(m, slug, start, count) for m, slug, start, count, _ in given} == {
            (member, *due) for due in expected
        }
        bonus = {c.slug: c.bonus_points > 0 for c in self.run(self.challenges.challenges())}
        assert all(paid == bonus[slug] for _, slug, _, _, paid in given)
        assert self.due(member) == set()

    # Steps

    @rule(target=members, partner=partners, customer=st.integers(0, 5))
    def enrol(self, partner: str, customer: int) -> str:
        member = str(self.run(self.service.enrol(partner, f"c{customer}")).member.id)
        self.enrolled.setdefault(member, (partner, f"c{customer}"))
        self.award(self.live(member))
        return member

    @rule(target=transfers, member=members, partner=partners, amount=points)
    def earn(self, member: str, partner: str, amount: int) -> int:
        posting = self.run(
            self.service.earn(partner, MemberRef(id=member), self.key(), points=amount)
        )
        self.award(self.live(member))
        return int(posting.transfer.id)

    @rule(
        target=transfers,
        member=members,
        partner=partners,
        amount=st.decimals(min_value=1, max_value=400, places=2),
    )
    def buy(self, member: str, partner: str, amount: Decimal) -> int:
        key = self.key()
        try:
            earned = self.run(
                self.programme.earn(partner, MemberRef(id=member), key, None, [Line(amount)])
            )
        except DomainError as error:
            assert error.code is ErrorCode.AMOUNT_TOO_SMALL
            return 0
        self.purchases.append((partner, key, amount))
        self.award(self.live(member))
        return int(earned.posting.transfer.id)

    @rule(target=transfers, data=st.data())
    def give_back(self, data: st.DataObject) -> int:
        if not self.purchases:
            return 0
        partner, receipt, amount = data.draw(st.sampled_from(self.purchases))
        part = data.draw(st.decimals(min_value=Decimal("0.01"), max_value=amount, places=2))
        try:
            returned = self.run(self.programme.return_purchase(partner, receipt, part, self.key()))
        except DomainError as error:
            assert error.code is ErrorCode.RETURN_EXCEEDS_PURCHASE
            return 0
        return int(returned.transfer.transfer.id) if returned.transfer else 0

    @rule(transfer=transfers, part=st.one_of(st.none(), st.integers(1, 3000)))
    def reverse(self, transfer: int, part: int | None) -> None:
        if transfer == 0:
            return
        try:
            self.run(self.service.reverse(transfer, self.key(), points=part))
        except DomainError as error:
            allowed = {
                ErrorCode.INSUFFICIENT_POINTS,
                ErrorCode.AMOUNT_OUT_OF_BOUNDS,
                ErrorCode.TRANSFER_ALREADY_REVERSED,
                ErrorCode.NOT_REVERSIBLE,
            }
            assert error.code in allowed, error

    @rule(member=members, other=members)
    def merge(self, member: str, other: str) -> None:
        survivor, retired = self.live(member), self.live(other)
        if survivor == retired or retired not in self.enrolled:
            return
        partner, customer = self.enrolled[retired]
        proof = Proof(partner, "https://idp.test", f"subject-{self.key()}", customer)
        linked = self.run(self.identity.link(survivor, proof))
        assert linked.merged == (retired,)
        self.survivor[retired] = survivor
        self.states.pop(retired, None)
        self.award(survivor)

    @rule(hours=st.one_of(st.integers(1, 72), st.integers(24 * 20, 24 * 400)))
    def time_passes(self, hours: int) -> None:
        self.clock.now += timedelta(hours=hours)

    @rule()
    def review_job(self) -> None:
        self.run(self.tiers.review_due())

    @rule()
    def badge_sweep(self) -> None:
        expected = {(member, *due) for member in self.survivors() for due in self.due(member)}
        assert self.run(self.challenges.evaluate_all(self.clock.now)) == len(expected)

    # After every step

    @invariant()
    def tiers_match_the_rescan(self) -> None:
        now = self.clock.now
        for member in self.survivors():
            status = self.run(self.tiers.status(member))
            value = self.read(lambda c, m=member: oracle.qualifying_value(c, COALITION, m, now))
            state = advance(TIERS, self.states.get(member, initial(TIERS)), value, now)
            self.states[member] = state
            assert status.qualifying_value == value
            assert (status.tier.slug, status.since, status.review_at, status.downgrade_at) == (
                tier_of(TIERS, state).slug,
                state.since,
                state.review_at,
                state.downgrade_at,
            )

    @invariant()
    def challenge_progress_matches_the_rescan(self) -> None:
        for member in self.survivors():
            for progress in self.run(self.challenges.progress(member)):

                async def rescan(connection: Any, p: Any = progress, m: str = member) -> int:
                    return await oracle.progress(connection, p.challenge, m, p.period_start)

                assert progress.count == self.read(rescan), progress.challenge.slug


def test_tiers_and_challenges_match_the_rescan_of_history(database_url: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        counter = itertools.count()

        def machine() -> ProgrammeMachine:
            url = database_url
            if url.startswith("sqlite"):
                url = f"sqlite+aiosqlite:///{Path(folder) / f'p{next(counter)}.db'}"
            return ProgrammeMachine(url)

        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=8,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
