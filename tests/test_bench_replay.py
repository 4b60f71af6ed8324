"""make bench's direct baseline: statements recorded from the gateway's posting of one earn
become a template that sends the same statements for another earn (bench/replay.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bench.replay import Recorded, Values, build_template

TRACED = Values("member-a", "key-a", 123_457, datetime(2026, 1, 1, 12, tzinfo=UTC))
MONTH = datetime(2026, 1, 1, tzinfo=UTC)  # a period's start: not the posting's moment
LATER = Values("member-b", "key-b", 40, datetime(2026, 2, 2, tzinfo=UTC))
LOCK = "SELECT id FROM members WHERE id = $1 FOR NO KEY UPDATE"
CLAIM = "INSERT INTO transfers (...) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id"
CREDIT = "INSERT INTO accounts (...) VALUES ($1, $2, $3) ON CONFLICT ... RETURNING id, balance"
ENTRIES = "INSERT INTO entries (...) VALUES ($1, $2, $3, $4, $5, $6)"
OUTBOX = "INSERT INTO events (payload, occurred_at) VALUES ($1, $2)"
COUNTER = "UPDATE counters SET points = points + $1 WHERE member_id = $2 AND period = $3"
HASH_A = "ab" * 32


def recorded_posting() -> list[Recorded]:
    """What the gateway sent for TRACED: transfer 9001, wallet 77 at 500,000 points after."""
    return [
        Recorded(LOCK, ("member-a",), False, [("member-a",)]),
        Recorded(
            CLAIM,
            ("earn", "member-a", "skyway", 123_457, "earn:skyway", "key-a", HASH_A),
            False,
            [(9001,)],
        ),
        Recorded(CREDIT, ("skyway", "member-a", 123_457), False, [(77, 500_000)]),
        Recorded(
            ENTRIES,
            [
                (9001, 3, "skyway", None, -123_457, None),
                (9001, 77, "skyway", "member-a", 123_457, 500_000),
            ],
            True,
            [],
        ),
        Recorded(
            OUTBOX,
            ('{"member": "member-a", "key": "key-a", "at": 1}', TRACED.at),
            False,
            [],
        ),
        Recorded(COUNTER, (123_457, "member-a", MONTH), False, []),
    ]


def test_a_later_earn_sends_the_same_statements_with_its_own_values() -> None:
    template = build_template("skyway", recorded_posting(), TRACED)
    assert [step.sql for step in template.steps] == [LOCK, CLAIM, CREDIT, ENTRIES, OUTBOX, COUNTER]
    # What PostgreSQL answers the later earn: its transfer 9100, its wallet 88 at 640 points.
    answers = [[("member-b",)], [(9100,)], [(88, 640)], [], [], []]
    sent = [step.arguments(LATER, answers) for step in template.steps]
    assert sent[0] == ["member-b"]
    assert sent[1] == ["earn", "member-b", "skyway", 40, "earn:skyway", "key-b", LATER.hash()]
    assert sent[2] == ["skyway", "member-b", 40]
    # The entries: the transfer id and the wallet's id and balance come from the answers;
    # the issuance account (3) is the recorded one.
    assert sent[3] == [
        [9100, 3, "skyway", None, -40, None],
        [9100, 88, "skyway", "member-b", 40, 640],
    ]
    assert sent[4] == ['{"member": "member-b", "key": "key-b", "at": 1}', LATER.at]
    assert sent[5] == [40, "member-b", MONTH]
    assert template.steps[3].executemany


def test_the_request_hash_differs_between_earns() -> None:
    assert LATER.hash() != TRACED.hash()
    assert len(LATER.hash()) == 64


def test_a_trace_whose_answers_hold_the_points_is_refused() -> None:
    """A new wallet's balance equals the earn's points: the balance could not be told from
    the points, and later earns would post a wrong balance_after."""
    posting = recorded_posting()
    posting[2] = Recorded(CREDIT, ("skyway", "member-a", 123_457), False, [(77, 123_457)])
    with pytest.raises(ValueError, match="returned the traced earn's points"):
        build_template("skyway", posting, TRACED)


def test_a_transaction_that_never_sends_the_earn_is_refused() -> None:
    unrelated = [Recorded("SELECT 1", (), False, [(1,)])]
    with pytest.raises(ValueError, match="never sends"):
        build_template("skyway", unrelated, TRACED)
