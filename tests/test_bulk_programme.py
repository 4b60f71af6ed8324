"""A batch is the same lines earned one by one (issue 12: lines for the same member in one
batch compose in order), with the whole programme: the full demo coalition (tiers with
their multipliers, challenges and their badges) and two partners of the programme tests
(``shop``: sign-up, first-purchase, frequency and referral bonuses, product multipliers, a
promotion, returns that leave a debt; ``store``: a return window, so pending points).

For hand-picked and random batches, twin members get the same history: one through
``earnPointsBulk``, the other through ``earnPoints`` line by line (random batches mix two
members' lines, sent one by one in the batch's order). Every line answers alike
(points, breakdown, pending, replay, the wallet's balance after it, errors), and the twins
end alike: wallets, tier, transfer history, challenge progress and badges (after the event
consumers ran). Over HTTP on both databases.
"""

from __future__ import annotations

import random
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from partners.config.coalition import DEMO_DIRECTORY
from tests.conftest import Clock, Gateway, start_gateway
from tests.operations import ENROL, ERRORS, REDEEM, TRANSFER_FIELDS, codes, payload
from tests.test_bulk import BULK
from tests.test_programme import APPLY, REFERRAL_CODE, RETURN, SHOP, STORE

EARN = f"""
mutation($input: EarnPointsInput!) {{
  earnPoints(input: $input) {{
    transfer {{ {TRANSFER_FIELDS} }} breakdown {{ rule description points }}
    pending idempotentReplay {ERRORS}
  }}
}}"""
STATE = """
query($id: ID!) {
  member(id: $id) {
    wallets { partner { slug } balance pending owed held available }
    tier {
      tier { slug } since reviewAt downgradeAt qualifyingValue { amount currency }
      nextTier { slug } valueNeeded { amount } valueToKeep { amount }
    }
    transfers(first: 100) {
      edges { node { kind points purchaseAmount reason partner { slug } toPartner { slug } } }
    }
    challenges { challenge { slug } count target completed awardedAt periodStart }
    badges { name bonusPoints periodStart challenge { slug } bonusTransfer { points } }
  }
}"""
PARTNERS = ("shop", "store", "brewbar", "skyway")  # harbour keeps its points elsewhere


@pytest.fixture
async def programme(database_url: str, clock: Clock, tmp_path: Path) -> AsyncIterator[Gateway]:
    config = tmp_path / "config"
    shutil.copytree(DEMO_DIRECTORY, config)
    (config / "shop.toml").write_text(SHOP)
    (config / "store.toml").write_text(STORE)
    async for gateway in start_gateway(database_url, clock, config_dir=str(config)):
        yield gateway


@dataclass(frozen=True)
class Twin:
    """A member of one side: ``tag`` names its customer ids; ``side`` prefixes the keys of
    its side's lines (keys are the partner's, not the member's)."""

    tag: str
    side: str
    member: str
    referrer: str


# A line as the tests write it: the member ("who", 0 unless said) is filled in per side;
# "customer" names the member by its shop customer id instead of its member id.
Spec = dict[str, Any]
Side = tuple[Twin, ...]


def materialise(spec: Spec, side: Side) -> dict[str, Any]:
    twin = side[spec.get("who", 0)]
    line = {k: v for k, v in spec.items() if k not in ("key", "customer", "who")}
    if spec.get("customer"):
        line["member"] = {"partnerCustomerId": f"{twin.tag}-shop"}
    else:
        line["member"] = {"id": twin.member}
    line["idempotencyKey"] = f"{twin.side}:{spec['key']}"
    return line


class Twins:
    """The two sides (their members pairwise alike) and the steps both take."""

    def __init__(self, gateway: Gateway, batch: Side, single: Side) -> None:
        self.gateway, self.batch, self.single = gateway, batch, single
        self.lines = 0

    async def step(self, partner: str, specs: list[Spec]) -> list[dict[str, Any]]:
        """The batch to one twin, the same lines one by one to the other; each line answers
        alike. Then the event consumers run."""
        lines = [materialise(spec, self.batch) for spec in specs]
        body = payload(
            await self.gateway.gql(BULK, {"input": {"partner": partner, "lines": lines}})
        )
        assert body["userErrors"] == [] and len(body["results"]) == len(specs)
        singles = []
        for spec in specs:
            variables = {"partner": partner, **materialise(spec, self.single)}
            singles.append(payload(await self.gateway.gql(EARN, {"input": variables})))
        for index, (mine, theirs) in enumerate(zip(body["results"], singles, strict=True)):
            assert mine["index"] == index
            assert answer(mine, ["input", "lines", str(index)]) == answer(theirs, ["input"]), (
                partner,
                index,
                specs[index],
            )
        failed = sum(1 for r in singles if r["userErrors"])
        assert (body["succeeded"], body["failed"]) == (len(specs) - failed, failed)
        await self.gateway.settle_events()
        self.lines += len(specs)
        return list(body["results"])

    async def both_end_alike(self) -> None:
        for mine, theirs in zip(self.batch, self.single, strict=True):
            for a, b in ((mine.member, theirs.member), (mine.referrer, theirs.referrer)):
                assert await state(self.gateway, a) == await state(self.gateway, b)


def answer(result: dict[str, Any], prefix: list[str]) -> dict[str, Any]:
    """A line's answer without what differs between twins by design (ids, keys, the pool's
    own running balances), with error fields relative to the line."""
    errors = []
    for error in result["userErrors"]:
        path = error["field"]
        assert path[: len(prefix)] == prefix, path
        errors.append((error["code"], path[len(prefix) :], error["message"]))
    transfer, breakdown = result["transfer"], result["breakdown"]
    if transfer is not None and breakdown is None:
        # earnPoints gives no breakdown for plain points; a batch's line names them.
        breakdown = [
            {"rule": "points", "description": "points given", "points": transfer["points"]}
        ]
    if transfer is not None:
        transfer = {
            **{k: v for k, v in transfer.items() if k not in ("id", "member", "idempotencyKey")},
            "legs": [
                (
                    leg["partner"]["slug"],
                    leg["account"],
                    leg["amount"],
                    leg["balanceAfter"] if leg["account"] == "WALLET" else None,
                )
                for leg in transfer["legs"]
            ],
        }
    return {
        "transfer": transfer,
        "breakdown": breakdown,
        "pending": result["pending"],
        "replay": result["idempotentReplay"],
        "errors": errors,
    }


async def state(gateway: Gateway, member: str) -> dict[str, Any]:
    found: dict[str, Any] = (await gateway.gql(STATE, {"id": member}))["data"]["member"]
    for edge in found["transfers"]["edges"]:  # a debt's repayment names its purchase's id
        reason = edge["node"]["reason"]
        edge["node"]["reason"] = reason and re.sub(r"purchase \d+", "purchase N", reason)
    return found


async def enrol(gateway: Gateway, partner: str, customer: str) -> str:
    variables = {"input": {"partner": partner, "partnerCustomerId": customer}}
    result = payload(await gateway.gql(ENROL, variables))
    assert result["userErrors"] == []
    member: str = result["member"]["id"]
    return member


async def twin(gateway: Gateway, tag: str, side: str) -> Twin:
    """A member enrolled at the shop (its sign-up bonus), referred by another shop member."""
    member = await enrol(gateway, "shop", f"{tag}-shop")
    referrer = await enrol(gateway, "shop", f"{tag}-ref")
    code = (await gateway.gql(REFERRAL_CODE, {"id": referrer}))["data"]["member"]["referralCode"]
    applied = payload(await gateway.gql(APPLY, {"input": {"memberId": member, "code": code}}))
    assert applied["applied"] is True
    return Twin(tag, side, member, referrer)


async def twins(gateway: Gateway, name: str, size: int = 1) -> Twins:
    """A side earning through batches and one earning line by line, of ``size`` members."""
    sides = [
        tuple([await twin(gateway, f"{name}-{s}{i}", f"{name}-{s}") for i in range(size)])
        for s in ("B", "S")
    ]
    return Twins(gateway, *sides)


def buy(
    key: str, amount: str | None = None, *lines: tuple[str, str | None, str | None], **extra: Any
) -> Spec:
    purchase: dict[str, Any] = {}
    if amount is not None:
        purchase["amount"] = amount
    if lines:
        purchase["lines"] = [{"amount": a, "sku": s, "category": c} for a, s, c in lines]
    return {"key": key, "purchase": purchase, **extra}


def give(key: str, points: int, **extra: Any) -> Spec:
    return {"key": key, "points": points, **extra}


def rules(result: dict[str, Any]) -> list[str]:
    return [award["rule"] for award in result["breakdown"] or []]


# ---- hand-picked batches ----------------------------------------------------------------


async def test_a_batch_earns_what_its_lines_earn_one_by_one_across_the_programme(
    programme: Gateway,
):
    pair = await twins(programme, "hand")
    shop = await pair.step(
        "shop",
        [
            buy("s1", "5.00"),  # the first purchase here: the welcome bonus; too small to refer
            buy("s2", None, ("10.00", "SKU-1", None), ("5.50", None, "fresh"), ("4.50", None, "x")),
            give("s3", 40, reason="goodwill"),
            buy("s4", "30.00", customer=True),  # the third purchase this month: frequency
            buy("s5", "0.40"),  # earns no whole point
            buy("s2", None, ("10.00", "SKU-1", None), ("5.50", None, "fresh"), ("4.50", None, "x")),
            buy("s6", "-1"),
            buy("s7", "12.00", customer=True),
            buy("s8", "7.00"),
            buy("s4", "31.00"),  # the key again, another purchase
            buy("s9", "8.00"),  # the sixth purchase: frequency again
        ],
    )
    assert rules(shop[0]) == ["base", "promotion", "promotion"]
    assert "referral" in rules(shop[1])
    assert rules(shop[3])[-1] == "frequency" and rules(shop[10])[-1] == "frequency"
    assert codes(shop[4]) == ["AMOUNT_TOO_SMALL"] and codes(shop[6]) == ["AMOUNT_NOT_POSITIVE"]
    assert shop[5]["idempotentReplay"] is True and codes(shop[9]) == ["IDEMPOTENCY_KEY_REUSED"]

    store = await pair.step(
        "store",
        [
            buy("t1", "30.00"),
            give("t2", 15),
            buy("t3", "12.34"),
            buy("t1", "30.00"),
            buy("t4", "1"),
        ],
    )
    assert [r["pending"] for r in store] == [True, False, True, True, True]

    # 700 stars reach silver (25 EUR of 0.04 EUR stars): the next lines get its multiplier;
    # the fifth visit this month is the BrewBar Regular badge, the third partner Explorer.
    brewbar = await pair.step(
        "brewbar",
        [
            buy("b1", "10.00"),
            buy("b2", "700.00"),
            buy("b3", "10.00"),
            give("b4", 5),
            buy("b5", "3.00"),
            buy("b6", "2.00"),
            buy("b7", "1.00"),
        ],
    )
    assert "tier" not in rules(brewbar[0]) and "tier" in rules(brewbar[2])
    skyway = await pair.step("skyway", [buy("k1", "100.00"), give("k2", 2000)])
    assert "tier" not in rules(skyway[0])
    # 2,000 more stars reach gold: 1.5 at BrewBar, 1.25 at SkyWay, from the next line on.
    await pair.step("brewbar", [buy("b8", "2000.00"), buy("b9", "10.00"), buy("b2", "700.00")])
    gold = await pair.step("skyway", [buy("k3", "10.00"), buy("k1", "100.00")])
    assert "tier" in rules(gold[0]) and gold[1]["idempotentReplay"] is True

    await pair.both_end_alike()
    mine = await state(programme, pair.batch[0].member)
    assert mine["tier"]["tier"]["slug"] == "gold"
    assert {b["challenge"]["slug"] for b in mine["badges"]} == {"explorer", "brewbar-regular"}
    wallets = {w["partner"]["slug"]: w for w in mine["wallets"]}
    assert wallets["store"]["pending"] > 0 and wallets["store"]["balance"] == 15
    referrer = await state(programme, pair.batch[0].referrer)
    assert {w["partner"]["slug"]: w["balance"] for w in referrer["wallets"]}["shop"] == 550


async def test_a_batch_pays_back_a_debt_line_by_line_as_single_earns_do(programme: Gateway):
    pair = await twins(programme, "debt")
    for side in (pair.batch, pair.single):
        who = side[0]
        # 100.00 earns 300 (and 250 + 500 referral); 600 spent; the return owes 100.
        first = materialise(buy("setup", "100.00"), side)
        earned = payload(await programme.gql(EARN, {"input": {"partner": "shop", **first}}))
        assert earned["transfer"]["points"] == 300
        spend = {"partner": "shop", "member": {"id": who.member}, "points": 600}
        spent = payload(
            await programme.gql(REDEEM, {"input": {**spend, "idempotencyKey": f"{who.tag}:x"}})
        )
        assert spent["userErrors"] == []
        variables = {"partner": "shop", "receipt": first["idempotencyKey"], "amount": "100.00"}
        back = payload(
            await programme.gql(RETURN, {"input": {**variables, "idempotencyKey": f"{who.tag}:r"}})
        )
        assert back["owed"] == 100
    await pair.step(
        "shop",
        [buy("d1", "20.00"), give("d2", 30), buy("d3", "10.00"), buy("d4", "10.00"), give("d5", 7)],
    )
    await pair.both_end_alike()
    wallets = {
        w["partner"]["slug"]: w for w in (await state(programme, pair.batch[0].member))["wallets"]
    }
    assert wallets["shop"]["owed"] == 0 and wallets["shop"]["balance"] > 0


# ---- random batches ---------------------------------------------------------------------


def random_spec(rng: random.Random, number: int, earlier: list[Spec], partner: str) -> Spec:
    """A line: mostly purchases of any size (some with product lines), some points, now and
    then a bad line, a line repeated, or a key reused for another request."""
    roll = rng.random()
    if earlier and roll < 0.12:
        return dict(rng.choice(earlier))  # a resend of an earlier line
    if earlier and roll < 0.17:
        reused = rng.choice(earlier)
        return {**give(reused["key"], rng.randint(1, 50))}  # same key, another request
    key = f"r{number}"
    who = {"who": rng.randint(0, 1)}
    if roll < 0.22:
        return rng.choice([buy(key, "-3", **who), give(key, 0), buy(key, "0.01"), buy(key)])
    if roll < 0.40:
        return give(key, rng.randint(1, 3000), reason=rng.choice([None, "bonus"]), **who)
    amount = f"{rng.randint(1, 90000) / 100:.2f}"
    extra = {"customer": True, **who} if partner == "shop" and rng.random() < 0.3 else who
    if rng.random() < 0.3:
        lines = [
            (
                f"{rng.randint(1, 5000) / 100:.2f}",
                rng.choice([None, "SKU-1"]),
                rng.choice([None, "fresh", "organic"]),
            )
            for _ in range(rng.randint(1, 3))
        ]
        return buy(key, rng.choice([None, amount]), *lines, **extra)
    return buy(key, amount, **extra)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_batches_earn_what_their_lines_earn_one_by_one(programme: Gateway, seed: int):
    rng = random.Random(seed)
    pair = await twins(programme, f"rand{seed}", size=2)
    earlier: list[Spec] = []
    numbers = iter(range(10_000))
    for _ in range(5):
        partner = rng.choice(PARTNERS)
        specs: list[Spec] = []
        for _ in range(rng.randint(4, 14)):
            spec = random_spec(rng, next(numbers), [*earlier, *specs], partner)
            if spec.get("customer") and partner != "shop":
                spec.pop("customer")
            specs.append(spec)
        await pair.step(partner, specs)
        earlier.extend(specs)
    await pair.both_end_alike()
    assert pair.lines >= 20
