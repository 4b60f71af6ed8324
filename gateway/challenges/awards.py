"""The consumer that gives badges and their bonuses (``challenges.awards``).

Counters move in each earn's own transaction (``challenge_counters``); this consumer follows
the events (``points.earned``, and ``member.merged``, whose counters add up) and, for each
member they name, awards what the counters show met and not yet awarded in the periods that
hold the events: the badge row and its bonus posting (through the ledger, on the consumer's
connection), in the transaction that also advances the consumer's position. The award row's
unique key (challenge, member, period) and the bonus's idempotency key make a replayed batch,
a second runner or the sweep (``ChallengeService.evaluate_all``) award nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.challenges.service import ChallengeService
from gateway.events import types
from gateway.events.event import Event
from gateway.ledger import store as repository
from gateway.ledger.locks import Lock, lock_members

FOLLOWED = frozenset({types.POINTS_EARNED, types.MEMBER_MERGED})


class ChallengeAwards:
    """``Consumer`` (gateway/events/event.py) of the badges."""

    name = "challenges.awards"
    # Events per batch: a batch costs a few statements however many members it names (and
    # a posting per badge given), so bulk earning's thousands of events go in big batches.
    batch_size = 2000

    def __init__(self, challenges: ChallengeService) -> None:
        self.challenges = challenges

    async def apply(self, connection: AsyncConnection, events: Sequence[Event]) -> None:
        spans: dict[str, tuple[datetime, datetime]] = {}
        for event in events:
            if event.type not in FOLLOWED or event.member_id is None:
                continue
            moment = event.occurred_at
            low, high = spans.get(event.member_id, (moment, moment))
            spans[event.member_id] = (min(low, moment), max(high, moment))
        if not spans:
            return
        await self.challenges.prepare(connection)
        # Most members of a batch met nothing new: a read without locks finds the few who
        # did (usually none).
        now = await repository.members_by_id(connection, sorted(spans))
        found = await self.challenges.meeting(
            connection, _by_survivor(spans, {m: record.id for m, record in now.items()})
        )
        if not found:
            return
        # Those at once, in the one lock order: postings go on, a merge waits (see
        # locks.lock_members); what is due is read again under the locks. A merge that
        # committed in between shows in ``live``; one that made a member due who was not
        # found here has its own ``member.merged`` event, which a later batch follows.
        wanted = sorted(member for member, record in now.items() if record.id in found)
        live = await lock_members(connection, wanted, Lock.SHARED)
        chosen = {member: spans[member] for member in wanted}
        await self.challenges.award_due_many(connection, _by_survivor(chosen, live))


def _by_survivor(
    spans: dict[str, tuple[datetime, datetime]], survivors: dict[str, str]
) -> dict[str, tuple[datetime, datetime]]:
    """The members' spans gathered per survivor (unknown members left out)."""
    found: dict[str, tuple[datetime, datetime]] = {}
    for member_id, (low, high) in spans.items():
        survivor = survivors.get(member_id)
        if survivor is None:
            continue  # unknown member
        before = found.get(survivor, (low, high))
        found[survivor] = (min(before[0], low), max(before[1], high))
    return found
