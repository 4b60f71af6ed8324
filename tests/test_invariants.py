"""Random sequences of enrol / earn / redeem / convert / reverse / retry / merge / bulk
batches (and their resends), on both databases. A merge happens as in production: a member
links a sign-in whose token carries another member's customer id.

After every step: the ledger audit finds nothing (pools and transfers balance, no wallet
is negative, each wallet equals the sum of its entries, conversions touch both pools),
each account's entries carry a running ``balance_after`` in the order they were posted, no
key is posted twice, and every wallet equals what a simple model of the same calls expects.
A bulk batch's lines are checked against what each would do on its own: a new key posts
once (its copies in the batch answer from it), a key posted before is replayed or, for
another request, IDEMPOTENCY_KEY_REUSED, a bad line fails with its code.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import tempfile
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from gateway.earning.bulk import BulkLine
from gateway.earning.observer import observe_programme
from gateway.earning.purchases import Earned
from gateway.earning.rules import Award, Line
from gateway.earning.service import EarningService
from gateway.expiry.service import ExpiryService
from gateway.gifting.service import GiftService
from gateway.kernel.database import create_engine, migrate
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.ledger import exchange
from gateway.ledger.audit import audit
from gateway.ledger.records import MemberRef, Posting
from gateway.ledger.service import LedgerService
from gateway.members.identity import IdentityService
from gateway.members.records import Proof
from partners.config.coalition import DEMO_DIRECTORY, load_coalition
from tests.conftest import Clock, _truncate

COALITION = load_coalition(DEMO_DIRECTORY)
# The model is of the gateway's own ledger: pools kept in a partner's own system (the demo's
# harbour) are exercised against a real partner service in test_remote_operations.py.
PARTNERS = sorted(slug for slug, partner in COALITION.partners.items() if partner.pool.hosted)
partners = st.sampled_from(PARTNERS)
points = st.integers(min_value=1, max_value=3000)
GHOST = "00000000-0000-0000-0000-000000000000"
# What a bulk line is: good ones mostly, and the bad ones with the code each must fail with.
LINE_KINDS = ("points", "purchase", "points", "purchase", "zero", "negative", "ghost", "both")
LINE_ERRORS = {
    "zero": ErrorCode.AMOUNT_NOT_POSITIVE,
    "negative": ErrorCode.AMOUNT_NOT_POSITIVE,
    "ghost": ErrorCode.UNKNOWN_MEMBER,
    "both": ErrorCode.INVALID_INPUT,
}


class LedgerMachine(RuleBasedStateMachine):
    members = Bundle("members")
    transfers = Bundle("transfers")

    def __init__(self, url: str) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = Clock()
        self.keys = itertools.count()
        self.model: dict[tuple[str, str], int] = defaultdict(int)
        self.calls: list[tuple[str, dict[str, Any], Posting]] = []
        self.reversed: dict[int, int] = defaultdict(int)  # transfer -> points reversed
        self.enrolled: dict[str, tuple[str, str]] = {}  # member -> (partner, customer id)
        self.survivor: dict[str, str] = {}  # merged member -> the member it lives on as
        self.service = self.run(self._start(url))
        self.programme = EarningService(self.service)
        self.gifts = GiftService(self.service)
        self.expiry = ExpiryService(self.service)
        self.purchases: list[tuple[str, str, Decimal]] = []
        self.identity = IdentityService(self.service, self.clock)
        # Bulk lines that posted, by (partner, key): the line and its transfer.
        self.bulk_posted: dict[tuple[str, str], tuple[BulkLine, int]] = {}
        self.batches: list[tuple[str, list[BulkLine], list[Earned | DomainError]]] = []

    def live(self, member: str) -> str:
        while member in self.survivor:
            member = self.survivor[member]
        return member

    def run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(awaitable)

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

    def call(self, name: str, **arguments: Any) -> Posting | DomainError:
        try:
            posting: Posting = self.run(getattr(self.service, name)(**arguments))
        except DomainError as error:
            return error
        self.calls.append((name, arguments, posting))
        return posting

    def key(self) -> str:
        return f"k{next(self.keys)}"

    @rule(target=members, partner=partners, customer=st.integers(0, 5))
    def enrol(self, partner: str, customer: int) -> str:
        return self.enrol_member(partner, customer)

    def enrol_member(self, partner: str, customer: int) -> str:
        enrolled = self.run(self.service.enrol(partner, f"c{customer}"))
        member = enrolled.member.id
        assert member == self.live(member)
        self.enrolled.setdefault(member, (partner, f"c{customer}"))
        return member

    @rule(member=members, other=members)
    def merge_by_linking(self, member: str, other: str) -> None:
        survivor, retired = self.live(member), self.live(other)
        if survivor == retired or retired not in self.enrolled:
            return
        partner, customer = self.enrolled[retired]
        proof = Proof(partner, "https://idp.test", f"subject-{self.key()}", customer)
        linked = self.run(self.identity.link(survivor, proof))
        assert linked.member_id == survivor and linked.merged == (retired,)
        for pool in PARTNERS:
            self.model[(survivor, pool)] += self.model[(retired, pool)]
            self.model[(retired, pool)] = 0
        self.survivor[retired] = survivor

    @rule(target=transfers, member=members, partner=partners, amount=points)
    def earn_points(self, member: str, partner: str, amount: int) -> Any:
        result = self.call(
            "earn",
            partner=partner,
            member=MemberRef(id=member),
            idempotency_key=self.key(),
            points=amount,
        )
        assert isinstance(result, Posting)
        self.model[(self.live(member), partner)] += amount
        return result.transfer.id

    @rule(target=transfers, member=members, partner=partners, amount=points)
    def redeem(self, member: str, partner: str, amount: int) -> Any:
        result = self.call(
            "redeem",
            partner=partner,
            member=MemberRef(id=member),
            points=amount,
            idempotency_key=self.key(),
        )
        owner = self.live(member)
        if self.model[(owner, partner)] < amount:
            assert isinstance(result, DomainError) and result.code is ErrorCode.INSUFFICIENT_POINTS
            return 0
        assert isinstance(result, Posting)
        self.model[(owner, partner)] -= amount
        return result.transfer.id

    @rule(target=transfers, member=members, source=partners, target_partner=partners, amount=points)
    def convert(self, member: str, source: str, target_partner: str, amount: int) -> Any:
        result = self.call(
            "convert",
            member_id=member,
            source=source,
            target=target_partner,
            points=amount,
            idempotency_key=self.key(),
        )
        try:
            quote = exchange.quote(COALITION, source, target_partner, amount, self.clock())
        except DomainError as expected:
            assert isinstance(result, DomainError) and result.code is expected.code
            return 0
        owner = self.live(member)
        if self.model[(owner, source)] < amount:
            assert isinstance(result, DomainError) and result.code is ErrorCode.INSUFFICIENT_POINTS
            return 0
        assert isinstance(result, Posting), result
        assert result.transfer.received_points == quote.received
        self.model[(owner, source)] -= amount
        self.model[(owner, target_partner)] += quote.received
        return result.transfer.id

    @rule(transfer=transfers, part=st.one_of(st.none(), points))
    def reverse(self, transfer: int, part: int | None) -> None:
        """Reversals in parts of any size, several per transfer: they add up to at most the
        original (the audit checks every leg balances and the running totals)."""
        if transfer == 0:
            return
        original = self.run(self.service.transfers([transfer]))[transfer]
        legs = self.run(self.service.legs([transfer]))[transfer]
        left = original.points - self.reversed[transfer]
        result = self.call("reverse", transfer_id=transfer, idempotency_key=self.key(), points=part)
        if isinstance(result, DomainError):
            allowed = {
                ErrorCode.INSUFFICIENT_POINTS,
                ErrorCode.NOT_REVERSIBLE,
                ErrorCode.AMOUNT_OUT_OF_BOUNDS,
                ErrorCode.TRANSFER_ALREADY_REVERSED,
            }
            assert result.code in allowed, result
            if result.code is ErrorCode.TRANSFER_ALREADY_REVERSED:
                assert left == 0
            if result.code is ErrorCode.AMOUNT_OUT_OF_BOUNDS:
                assert part is not None and part > left
            return
        assert 0 < result.transfer.points <= left
        assert result.transfer.points == (left if part is None else part)
        self.reversed[transfer] += result.transfer.points
        assert original.member_id is not None
        member = self.live(original.member_id)
        for leg in result.legs:
            if leg.member_id is not None:
                self.model[(member, leg.pool)] += leg.amount
        assert all(self.model[(member, leg.pool)] >= 0 for leg in legs)

    @rule(
        member=members,
        partner=partners,
        amount=st.decimals(min_value=1, max_value=500, places=2),
        organic=st.booleans(),
    )
    def buy(self, member: str, partner: str, amount: Decimal, organic: bool) -> None:
        lines = [Line(amount, category="organic" if organic else None)]
        key = self.key()
        try:
            earned = self.run(self.programme.earn(partner, MemberRef(id=member), key, None, lines))
        except DomainError as error:
            assert error.code is ErrorCode.AMOUNT_TOO_SMALL
            return
        assert earned.posting.transfer.points == sum(a.points for a in earned.awards)
        self.model[(self.live(member), partner)] += earned.posting.transfer.points
        self.purchases.append((partner, key, amount))

    @rule(data=st.data())
    def give_back(self, data: st.DataObject) -> None:
        if not self.purchases:
            return
        partner, receipt, amount = data.draw(st.sampled_from(self.purchases))
        part = data.draw(st.decimals(min_value=Decimal("0.01"), max_value=amount, places=2))
        try:
            returned = self.run(self.programme.return_purchase(partner, receipt, part, self.key()))
        except DomainError as error:
            assert error.code is ErrorCode.RETURN_EXCEEDS_PURCHASE
            return
        posting = returned.transfer
        if posting is not None:
            assert posting.transfer.member_id is not None
            owner = self.live(posting.transfer.member_id)
            assert returned.taken <= self.model[(owner, partner)]
            self.model[(owner, partner)] -= returned.taken
        assert returned.owed == 0  # the demo's partners cap their returns

    @rule(member=members)
    def survey(self, member: str) -> None:
        try:
            posting = self.run(
                self.programme.record_activity(
                    "brewbar", MemberRef(id=member), "survey", self.key()
                )
            )
        except DomainError as error:
            assert error.code is ErrorCode.ACTIVITY_CAP_REACHED
            return
        self.model[(self.live(member), "brewbar")] += posting.transfer.points

    @rule(giver=members, receiver=members, partner=partners, amount=st.integers(1, 600))
    def gift(self, giver: str, receiver: str, partner: str, amount: int) -> None:
        try:
            posting = self.run(
                self.gifts.gift(partner, giver, MemberRef(id=receiver), amount, self.key())
            )
        except DomainError as error:
            allowed = {
                ErrorCode.SAME_MEMBER,
                ErrorCode.GIFT_LIMIT_EXCEEDED,
                ErrorCode.AMOUNT_TOO_SMALL,
                ErrorCode.INSUFFICIENT_POINTS,
            }
            assert error.code in allowed, error
            if error.code is ErrorCode.INSUFFICIENT_POINTS:
                assert self.model[(self.live(giver), partner)] < amount
            return
        assert posting.transfer.points == amount
        self.model[(self.live(giver), partner)] -= amount
        self.model[(self.live(receiver), partner)] += amount

    @rule(days=st.integers(30, 800))
    def time_passes_and_points_expire(self, days: int) -> None:
        self.clock.now += timedelta(days=days)
        posted = self.run(self.expiry.expire_due())
        again = self.run(self.expiry.expire_due())  # the job is safe to run twice
        assert again == 0
        if not posted:
            return
        # What expired left the wallets (the invariant compares them with the model).
        for (member, pool), balance in list(self.model.items()):
            if balance:
                found = self.run(self.service.wallets([member])).get(member, [])
                actual = sum(w.balance for w in found if w.pool == pool)
                assert 0 <= actual <= balance
                self.model[(member, pool)] = actual

    @rule(
        partner=partners,
        drawn=st.lists(
            st.tuples(
                members,
                st.sampled_from(LINE_KINDS),
                points,
                st.decimals(min_value=1, max_value=500, places=2),
                st.integers(0, 9),
            ),
            min_size=1,
            max_size=8,
        ),
    )
    def bulk(self, partner: str, drawn: list[tuple[str, str, int, Decimal, int]]) -> None:
        """A batch: new lines (points, purchases, bad ones), copies of its own lines, and
        keys of earlier batches resent as they were (0-9: 6-7 a copy, 8 a resend, 9 the key
        reused for another request)."""
        batch: list[BulkLine] = []
        past = sorted(key for key in self.bulk_posted if key[0] == partner)
        for member, kind, number, money, how in drawn:
            if how in (6, 7) and batch:
                batch.append(batch[number % len(batch)])
                continue
            if how >= 8 and past:
                old, _ = self.bulk_posted[past[number % len(past)]]
                if how == 9:
                    old = dataclasses.replace(old, points=(old.points or 0) + 1, amount=None)
                batch.append(old)
                continue
            ref = MemberRef(id=GHOST if kind == "ghost" else member)
            key = self.key()
            if kind in ("purchase", "negative"):
                amount = -money if kind == "negative" else money
                batch.append(BulkLine(ref, key, amount=amount))
            else:
                given = 0 if kind == "zero" else number
                both = money if kind == "both" else None
                batch.append(BulkLine(ref, key, points=given, amount=both))
        expected = [self._expected(partner, line) for line in batch]
        answers = self.run(self.programme.earn_bulk(partner, batch))
        assert len(answers) == len(batch)
        new: dict[str, list[Earned]] = defaultdict(list)
        for line, expect, answer in zip(batch, expected, answers, strict=True):
            if isinstance(expect, ErrorCode):
                assert isinstance(answer, DomainError) and answer.code is expect, (line, answer)
                continue
            assert isinstance(answer, Earned), (line, answer)
            posted = self.bulk_posted.get((partner, line.idempotency_key))
            if posted is not None:
                assert answer.posting.replayed
                assert answer.posting.transfer.id == posted[1]
                continue
            assert answer.posting.transfer.points == expect
            assert answer.posting.transfer.member_id == self.live(line.member.id or "")
            assert answer.posting.transfer.points == sum(a.points for a in answer.awards)
            new[line.idempotency_key].append(answer)
        for key, copies in new.items():
            line = next(x for x in batch if x.idempotency_key == key)
            assert len({c.posting.transfer.id for c in copies}) == 1
            assert sorted(c.posting.replayed for c in copies) == [False] + [True] * (
                len(copies) - 1
            )
            posting = copies[0].posting.transfer
            assert posting.id is not None
            self.bulk_posted[(partner, key)] = (line, posting.id)
            self.model[(self.live(line.member.id or ""), partner)] += posting.points
        self.batches.append((partner, batch, answers))

    def _expected(self, partner: str, line: BulkLine) -> ErrorCode | int:
        """What a line does on its own: its error, or the points it earns."""
        if line.points is not None and line.amount is not None:
            return ErrorCode.INVALID_INPUT
        if (line.points is not None and line.points <= 0) or (
            line.amount is not None and line.amount <= 0
        ):
            return ErrorCode.AMOUNT_NOT_POSITIVE
        if line.member.id == GHOST:
            return ErrorCode.UNKNOWN_MEMBER
        posted = self.bulk_posted.get((partner, line.idempotency_key))
        if posted is not None and posted[0] != line:
            return ErrorCode.IDEMPOTENCY_KEY_REUSED
        if line.points is not None:
            return line.points
        awards: list[Award] = self.run(self.programme.quote(partner, None, line.amount, []))
        return sum(a.points for a in awards)

    @rule(data=st.data())
    def resend_batch(self, data: st.DataObject) -> None:
        """A batch sent again answers each line as the first time and posts nothing."""
        if not self.batches:
            return
        partner, batch, first = data.draw(st.sampled_from(self.batches))
        again = self.run(self.programme.earn_bulk(partner, batch))
        for before, now in zip(first, again, strict=True):
            if isinstance(before, DomainError):
                assert isinstance(now, DomainError) and now.code is before.code
                continue
            assert isinstance(now, Earned) and now.posting.replayed
            assert now.posting.transfer == before.posting.transfer
            assert now.awards == before.awards

    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        if not self.calls:
            return
        name, arguments, first = data.draw(st.sampled_from(self.calls))
        again: Posting = self.run(getattr(self.service, name)(**arguments))
        assert again.replayed and again.transfer == first.transfer
        assert again.legs == first.legs

    @rule()
    def rates_move_on(self) -> None:
        self.clock.now = self.clock.now.replace(year=2027)

    @invariant()
    def entries_run_in_order_and_keys_post_once(self) -> None:
        async def work() -> tuple[list[Any], list[Any]]:
            async with self.service.engine.connect() as connection:
                entries = await connection.execute(
                    sa.text(
                        "SELECT account_id, amount, balance_after FROM entries "
                        "ORDER BY account_id, id"
                    )
                )
                twice = await connection.execute(
                    sa.text(
                        "SELECT idempotency_scope, idempotency_key FROM transfers "
                        "GROUP BY idempotency_scope, idempotency_key HAVING count(*) > 1"
                    )
                )
                return list(entries), list(twice)

        entries, twice = self.run(work())
        assert twice == []
        running: dict[int, int] = defaultdict(int)
        for account, amount, after in entries:
            running[account] += amount
            if after is not None:
                assert after == running[account], (account, amount, after)

    @invariant()
    def ledger_is_sound(self) -> None:
        assert self.run(audit(self.service.engine)) == []
        members = sorted({member for member, _ in self.model})
        wallets = self.run(self.service.wallets(members)) if members else {}
        actual = {(m, w.pool): w.balance for m, found in wallets.items() for w in found}
        expected = {
            pair: balance for pair, balance in self.model.items() if pair in actual or balance
        }
        assert actual == expected


def test_random_sequences_keep_the_invariants(database_url: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        counter = itertools.count()

        def machine() -> LedgerMachine:
            url = database_url
            if url.startswith("sqlite"):
                url = f"sqlite+aiosqlite:///{Path(folder) / f'm{next(counter)}.db'}"
            return LedgerMachine(url)

        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=20,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )


class BulkMachine(LedgerMachine):
    """Bulk batches and their resends among the single operations they meet most: earns,
    purchases, redeems, reversals, retries, merges (the others are left out, so that
    batches come often)."""

    convert = None  # type: ignore[assignment]
    gift = None  # type: ignore[assignment]
    survey = None  # type: ignore[assignment]
    give_back = None  # type: ignore[assignment]
    time_passes_and_points_expire = None  # type: ignore[assignment]
    rates_move_on = None  # type: ignore[assignment]
    another_bulk = LedgerMachine.bulk  # batches twice as often as any other step

    @initialize(target=LedgerMachine.members, partner=partners, customer=st.integers(0, 5))
    def first_member(self, partner: str, customer: int) -> str:
        return self.enrol_member(partner, customer)


def test_bulk_batches_among_random_operations_keep_the_invariants(database_url: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        counter = itertools.count()

        def machine() -> LedgerMachine:
            url = database_url
            if url.startswith("sqlite"):
                url = f"sqlite+aiosqlite:///{Path(folder) / f'b{next(counter)}.db'}"
            return BulkMachine(url)

        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=10,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
