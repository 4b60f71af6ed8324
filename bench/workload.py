"""The earns a scenario posts: members, partners, points and idempotency keys, drawn at random."""

from __future__ import annotations

import random
from dataclasses import dataclass

PARTNERS = ("skyway", "brewbar", "freshmart")
HOT_PARTNER = "skyway"


@dataclass(frozen=True)
class Member:
    global_id: str  # the relay id the gateway answers with
    uuid: str  # the id in the database


@dataclass(frozen=True)
class Earn:
    partner: str
    member: Member
    points: int
    key: str

    def __str__(self) -> str:
        return f"{self.partner}/{self.key}"


@dataclass(frozen=True)
class Workload:
    warmup: list[Earn]
    timed: list[Earn]


def draw_earns(
    rng: random.Random, members: dict[str, list[Member]], hot: bool, count: int, prefix: str
) -> list[Earn]:
    """Hot: every earn at the hot partner for its members; else any member at any partner."""
    everyone = [member for partner in PARTNERS for member in members[partner]]
    earns = []
    for index in range(count):
        if hot:
            partner, member = HOT_PARTNER, rng.choice(members[HOT_PARTNER])
        else:
            partner, member = rng.choice(PARTNERS), rng.choice(everyone)
        earns.append(Earn(partner, member, rng.randint(1, 1000), f"{prefix}-{index:06d}"))
    return earns


def workload(
    rng: random.Random,
    members: dict[str, list[Member]],
    hot: bool,
    prefix: str,
    warmup: int,
    requests: int,
) -> Workload:
    return Workload(
        warmup=draw_earns(rng, members, hot, warmup, f"{prefix}-warm"),
        timed=draw_earns(rng, members, hot, requests, prefix),
    )
